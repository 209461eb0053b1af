//! Chat metrics (none labelled by room or user: both are unbounded):
//!
//! - `pfc_chat_messages_total`: messages accepted (`SendMessage`);
//! - `pfc_chat_deliveries_total`: messages sent to subscribers (one message to 100
//!   subscribers is 100 deliveries; replays after a reconnect count too);
//! - `pfc_chat_subscribers`: `Subscribe` streams open on this process;
//! - `pfc_chat_presence_watchers`: `WatchPresence` streams open;
//! - `pfc_chat_presence_updates_total{action}`: presence heartbeats and leaves
//!   (`heartbeat`, `leave`);
//! - `pfc_chat_rate_limited_total`: sends and typing signals refused by the rate limiter.

use std::sync::LazyLock;

use pfc_metrics::prometheus_client::metrics::counter::Counter;
use pfc_metrics::prometheus_client::metrics::family::Family;
use pfc_metrics::prometheus_client::metrics::gauge::Gauge;

pub(crate) struct Metrics {
    pub(crate) messages: Counter,
    pub(crate) deliveries: Counter,
    pub(crate) subscribers: Gauge,
    pub(crate) presence_watchers: Gauge,
    pub(crate) presence: Family<[(&'static str, &'static str); 1], Counter>,
    pub(crate) rate_limited: Counter,
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        messages: Counter::default(),
        deliveries: Counter::default(),
        subscribers: Gauge::default(),
        presence_watchers: Gauge::default(),
        presence: Family::default(),
        rate_limited: Counter::default(),
    };
    pfc_metrics::register(
        "pfc_chat_messages",
        "Chat messages accepted",
        m.messages.clone(),
    );
    pfc_metrics::register(
        "pfc_chat_deliveries",
        "Chat messages sent to subscribers",
        m.deliveries.clone(),
    );
    pfc_metrics::register(
        "pfc_chat_subscribers",
        "Subscribe streams open on this process",
        m.subscribers.clone(),
    );
    pfc_metrics::register(
        "pfc_chat_presence_watchers",
        "WatchPresence streams open on this process",
        m.presence_watchers.clone(),
    );
    pfc_metrics::register(
        "pfc_chat_presence_updates",
        "Presence updates, by action (heartbeat, leave)",
        m.presence.clone(),
    );
    pfc_metrics::register(
        "pfc_chat_rate_limited",
        "Sends and typing signals refused by the per-user rate limits",
        m.rate_limited.clone(),
    );
    for a in ["heartbeat", "leave"] {
        let _ = m.presence.get_or_create(&[("action", a)]);
    }
    m
});

/// Registers the chat families now (exported from the first scrape on).
pub fn init() {
    LazyLock::force(&METRICS);
}

/// Counts one presence update.
pub(crate) fn presence(action: &'static str) {
    METRICS.presence.get_or_create(&[("action", action)]).inc();
}
