//! The contracts of the other chat kinds' webhooks (Slack, Mattermost, Teams, Google Chat,
//! Discord), as checks of a body: each kind's documented shape and limits. Used in-process on
//! rendered bodies and by the fake ([`super::fake_chats`]) on what the daemon posts.

use serde_json::Value;

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// What is wrong with `body` as a `kind` webhook body (empty when nothing).
pub fn violations(kind: &str, body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            out.push(format!("{kind}: {what}"));
        }
    };
    match kind {
        "slack" => {
            need(
                chars(&body["text"]) > 0 && chars(&body["text"]) <= 40_000,
                "text 1..=40000",
            );
            let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
            need(!blocks.is_empty() && blocks.len() <= 50, "1..=50 blocks");
            for b in &blocks {
                match b["type"].as_str() {
                    Some("header") => need(
                        b["text"]["type"] == "plain_text"
                            && (1..=150).contains(&chars(&b["text"]["text"])),
                        "header plain_text 1..=150",
                    ),
                    Some("section") => need(
                        b["text"]["type"] == "mrkdwn"
                            && (1..=3000).contains(&chars(&b["text"]["text"])),
                        "section mrkdwn 1..=3000",
                    ),
                    Some("actions") => {
                        let els = b["elements"].as_array().cloned().unwrap_or_default();
                        need(!els.is_empty() && els.len() <= 25, "actions 1..=25");
                        for e in els {
                            need(
                                e["type"] == "button"
                                    && (1..=75).contains(&chars(&e["text"]["text"])),
                                "button text 1..=75",
                            );
                            need(
                                (1..=3000).contains(&chars(&e["url"])),
                                "button url 1..=3000",
                            );
                        }
                    }
                    _ => need(false, "unknown block type"),
                }
            }
        }
        "mattermost" => {
            need(
                (1..=16_383).contains(&chars(&body["text"])),
                "text 1..=16383",
            );
            if let Some(a) = body.get("attachments") {
                need(
                    a.as_array()
                        .is_some_and(|a| a.iter().all(|x| x["fallback"].is_string())),
                    "attachments with fallback",
                );
            }
        }
        "discord" => {
            need(
                body["allowed_mentions"]["parse"] == serde_json::json!([]),
                "allowed_mentions.parse = []",
            );
            need(chars(&body["content"]) <= 2000, "content <= 2000");
            let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
            need(!embeds.is_empty() && embeds.len() <= 10, "1..=10 embeds");
            for e in embeds {
                need(chars(&e["title"]) <= 256, "embed title <= 256");
                need(
                    chars(&e["description"]) <= 4096,
                    "embed description <= 4096",
                );
                need(
                    chars(&e["title"]) + chars(&e["description"]) <= 6000,
                    "embed text <= 6000",
                );
            }
        }
        "teams" => {
            need(body["type"] == "message", "type = message");
            need(body.to_string().len() <= 28 * 1024, "<= 28 KB");
            let a = &body["attachments"][0];
            need(
                a["contentType"] == "application/vnd.microsoft.card.adaptive",
                "adaptive card attachment",
            );
            let c = &a["content"];
            need(
                c["type"] == "AdaptiveCard" && c["version"].is_string(),
                "AdaptiveCard with a version",
            );
            let blocks = c["body"].as_array().cloned().unwrap_or_default();
            need(!blocks.is_empty(), "a card body");
            for b in blocks {
                need(
                    b["type"] == "TextBlock" && b["text"].is_string(),
                    "TextBlocks",
                );
            }
            for act in c["actions"].as_array().cloned().unwrap_or_default() {
                need(
                    act["type"] == "Action.OpenUrl"
                        && act["url"].is_string()
                        && act["title"].is_string(),
                    "Action.OpenUrl",
                );
            }
        }
        "google_chat" => {
            need(body.to_string().len() <= 32_000, "<= 32 000 bytes");
            let cards = body["cardsV2"].as_array().cloned().unwrap_or_default();
            need(cards.len() == 1, "one cardsV2 card");
            for c in cards {
                need(c["cardId"].is_string(), "cardId");
                let sections = c["card"]["sections"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                need(!sections.is_empty(), "sections");
                need(
                    chars(&c["card"]["header"]["title"]) <= 200,
                    "header title <= 200",
                );
            }
            need(chars(&body["thread"]["threadKey"]) > 0, "thread.threadKey");
        }
        other => need(false, &format!("no contract for {other}")),
    }
    out
}
