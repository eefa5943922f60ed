//! Fuzz target: GitLab webhook bytes → `event::parse` → built-in templates → Cliq message.
//!
//! Input: an optional first line holding the `X-Gitlab-Event` header (when the input does not
//! start with `{`; an empty first line means no header), then the JSON body. Bodies that are not
//! JSON are skipped; for the rest the properties of `gitlab_chat_bridge_fuzz::check` must hold
//! (no panic, objects parse, rendering succeeds, valid Cliq JSON, no `{@`, no stray `{{`).
#![no_main]

use gitlab_chat_bridge::render::Renderer;
use gitlab_chat_bridge_fuzz::{check, renderer, split_input};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn shared_renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(renderer)
}

fuzz_target!(|data: &[u8]| {
    let (header, body) = split_input(data);
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    if let Err(e) = check(shared_renderer(), header.as_deref(), body) {
        panic!("header {header:?}: {e}");
    }
});
