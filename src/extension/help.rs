//! `/gitlab help` (and the answer to an empty or unknown subcommand): one line per subcommand.

use crate::render::cliq;

/// The subcommands, with `note` (what was not understood) first.
pub(super) fn help(note: Option<&str>) -> cliq::Message {
    let mut text = String::new();
    if let Some(n) = note {
        text.push_str(n);
        text.push_str("\n\n");
    }
    text.push_str(
        "*/gitlab subscribe* group/project [issue.* merge_request.*] [labels:bug,ui] [refs:main,release/*]: this chat receives that project's (or group's) events\n\
         */gitlab unsubscribe* group/project\n\
         */gitlab list*: this chat's subscriptions and mutes\n\
         */gitlab mute* group/project!12 or group/project#34 [for 2h]: nothing more about that merge request or issue here\n\
         */gitlab unmute* group/project!12\n\
         */gitlab status*: what the bridge still has to post\n\
         */gitlab setup* group/project [--dry-run]: install the bridge's GitLab hook (admins)\n\
         */gitlab reviews* group/project (or a group): the merge requests waiting for review, by reviewer\n\
         */gitlab remind* weekdays 09:30 group/project [tz:Europe/Berlin]: post that here on schedule (*/gitlab remind off* stops it)",
    );
    cliq::answer("gitlab-chat-bridge", &text, None)
}
