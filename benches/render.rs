//! Rendering throughput: messages per second on one core, through the same path `serve` uses
//! (parse → route → render → Cliq shape), over every bundled sample event.
//!
//! `cargo bench --bench render`. Target: ≥ 50 000 messages/s per core.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use gitlab_chat_bridge::commands::check::sample_events;
use gitlab_chat_bridge::render::{DateSettings, Rendered, Renderer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each measurement runs.
const RUN: Duration = Duration::from_secs(3);

fn main() {
    let settings = DateSettings {
        timezone: chrono_tz::Asia::Kolkata,
        date_format: "%d-%b-%Y %I:%M %p".into(),
        day_format: "%d-%b-%Y".into(),
        clock: Arc::new(chrono::Utc::now),
    };
    let renderer = match Renderer::new(Vec::new(), settings, false) {
        Ok(r) => r,
        Err(e) => panic!("templates: {e:?}"),
    };
    let events = sample_events();
    let raw: Vec<(String, serde_json::Value)> = events
        .iter()
        .map(|(_, e)| (e.kind.as_str().to_string(), e.raw.clone()))
        .collect();

    // Render only (events already parsed).
    let (n, secs) = measure(|| {
        let mut bytes = 0;
        for (_, ev) in &events {
            if let Ok(Rendered::Message(m, _)) = renderer.render(ev) {
                bytes += m.text().len();
            }
        }
        (events.len(), bytes)
    });
    println!(
        "render only:        {:>9.0} messages/s (one core)",
        n as f64 / secs
    );

    // Parse + render, from the JSON value as the server has it.
    let headers: Vec<Option<&str>> = raw
        .iter()
        .map(|(k, _)| match k.as_str() {
            "issue" | "work_item" => Some("Issue Hook"),
            "merge_request" => Some("Merge Request Hook"),
            "push" => Some("Push Hook"),
            "note" => Some("Note Hook"),
            // Every other kind is told by its body, as for a System Hook.
            _ => None,
        })
        .collect();
    let (n, secs) = measure(|| {
        let mut bytes = 0;
        for ((_, v), h) in raw.iter().zip(&headers) {
            if let Ok(ev) = gitlab_chat_bridge::event::parse(*h, v.clone()) {
                if let Ok(Rendered::Message(m, _)) = renderer.render(&ev) {
                    bytes += m.text().len();
                }
            }
        }
        (raw.len(), bytes)
    });
    let rate = n as f64 / secs;
    println!("parse + render:     {rate:>9.0} messages/s (one core)");
    println!("target 50 000/s:    {:>9.2} × target", rate / 50_000.0);
}

/// Runs `f` repeatedly for [`RUN`]; returns (messages, seconds).
fn measure(mut f: impl FnMut() -> (usize, usize)) -> (usize, f64) {
    for _ in 0..50 {
        std::hint::black_box(f());
    }
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < RUN {
        let (k, b) = f();
        std::hint::black_box(b);
        n += k;
    }
    (n, start.elapsed().as_secs_f64())
}
