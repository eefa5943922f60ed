//! How the long-running commands (`setup`, `catch-up`) show progress: an indicatif bar on
//! standard error when both standard output and standard error are terminals, plain lines on
//! standard output otherwise. The one home of indicatif.

use std::io::IsTerminal;

/// How progress is shown.
#[derive(Debug, Clone, Copy)]
pub enum ProgressKind {
    /// A bar on stderr: stdout and stderr are terminals.
    Bar,
    /// Plain lines on stdout.
    Lines,
}

impl ProgressKind {
    /// A bar when both standard output and standard error are terminals, else lines.
    pub fn detect() -> ProgressKind {
        if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            ProgressKind::Bar
        } else {
            ProgressKind::Lines
        }
    }

    /// A bar of `len` steps named `phase`, or `None` when progress is shown as lines.
    pub fn bar(self, len: usize, phase: &'static str) -> Option<indicatif::ProgressBar> {
        if !matches!(self, ProgressKind::Bar) || len == 0 {
            return None;
        }
        let bar = indicatif::ProgressBar::new(u64::try_from(len).unwrap_or(u64::MAX));
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {elapsed}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(phase);
        Some(bar)
    }
}
