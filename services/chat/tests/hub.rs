//! The fan-out hub over the in-memory store: one reader (and one presence poller) per room,
//! however many subscribers.

use std::sync::Arc;
use std::time::Duration;

use pfc_chat::store::now_ms;
use pfc_chat::{ChatStore, Hub, MemoryStore};
use pfc_runtime::Shutdown;
use pfc_testkit::wait_until;

/// 1,000 subscribers of a room share one reader, all get each message, and the reader stops
/// once they are gone.
#[tokio::test]
async fn one_reader_per_room_for_a_thousand_subscribers() {
    let store: Arc<dyn ChatStore> = Arc::new(MemoryStore::new(100));
    let hub = Hub::new(store.clone(), Shutdown::new());
    let mut subs: Vec<_> = (0..1000).map(|_| hub.subscribe("big")).collect();
    let _other = hub.subscribe("small");
    assert_eq!(hub.active_rooms(), 2);
    // The reader takes its starting point asynchronously (a real subscriber fills any gap from
    // the store; these raw receivers don't), so give it a moment before sending.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = store.append("big", "alice", "hello").await.unwrap();
    for rx in &mut subs {
        let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batch.messages, vec![sent.clone()]);
    }
    drop(subs);
    wait_until(
        "the idle reader to stop",
        Duration::from_secs(10),
        || async { (hub.active_rooms() == 1).then_some(()) },
    )
    .await;
}

/// Many presence watchers of a room share one poller, and a local change reaches them at once
/// (well before the 1 s poll).
#[tokio::test]
async fn one_presence_poller_per_room() {
    let store: Arc<dyn ChatStore> = Arc::new(MemoryStore::new(100));
    let hub = Hub::new(store.clone(), Shutdown::new());
    let ttl = Duration::from_secs(30);
    let mut watchers: Vec<_> = (0..100).map(|_| hub.watch_presence("room", ttl)).collect();
    assert_eq!(hub.presence_pollers(), 1);
    for w in &mut watchers {
        tokio::time::timeout(Duration::from_secs(5), w.wait_for(|v| v.is_some()))
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .heartbeat("room", "alice", now_ms(), ttl)
        .await
        .unwrap();
    hub.presence_changed("room");
    for w in &mut watchers {
        let list = tokio::time::timeout(
            Duration::from_millis(500),
            w.wait_for(|v| v.as_ref().is_some_and(|l| l.len() == 1)),
        )
        .await
        .expect("local change seen before the poll interval")
        .unwrap()
        .clone()
        .unwrap();
        assert_eq!(list[0].0, "alice");
    }
    drop(watchers);
    wait_until(
        "the idle poller to stop",
        Duration::from_secs(5),
        || async { (hub.presence_pollers() == 0).then_some(()) },
    )
    .await;
}
