//! One contract, two stores: every test here runs against [`MemoryStore`] and against
//! [`RedisStore`] on a real redis-server (pfc-testkit), so `pfc dev` and production behave alike.

use std::sync::Arc;
use std::time::Duration;

use pfc_chat::store::now_ms;
use pfc_chat::{ChatStore, MemoryStore, MessageId, RedisStore};
use pfc_testkit::{RedisCluster, RedisServer};

/// A store under test, plus the redis-server it needs (if any).
struct Fixture {
    store: Arc<dyn ChatStore>,
    _redis: Option<RedisServer>,
}

fn memory(history_len: usize) -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::new(history_len)),
        _redis: None,
    }
}

fn redis(history_len: usize) -> Fixture {
    let server = RedisServer::start();
    let store = RedisStore::new(&server.url(), history_len).unwrap();
    Fixture {
        store: Arc::new(store),
        _redis: Some(server),
    }
}

/// Seed URLs of the cluster [`cluster_store_passes_the_contract`] runs on (set before the first
/// fixture is made; the checks run one at a time on it).
static CLUSTER_URLS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn cluster(history_len: usize) -> Fixture {
    let urls = CLUSTER_URLS.get().expect("cluster started");
    Fixture {
        store: Arc::new(RedisStore::open(urls, true, history_len).unwrap()),
        _redis: None,
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory_store { $(
            #[tokio::test]
            async fn $name() { super::$name(super::memory).await }
        )* }
        mod redis_store { $(
            #[tokio::test]
            async fn $name() { super::$name(super::redis).await }
        )* }
        /// The whole contract on a real Redis Cluster (3 masters, 1 replica each): every call
        /// stays in one slot, typing signals travel over sharded pub/sub. The checks run one
        /// after the other on an emptied cluster (starting a cluster per check would take
        /// minutes).
        #[tokio::test]
        async fn cluster_store_passes_the_contract() {
            let c = RedisCluster::start(3, 1);
            CLUSTER_URLS.set(c.urls()).unwrap();
            $(
                c.flush();
                $name(cluster).await;
                eprintln!("chat cluster contract: {} ok", stringify!($name));
            )*
        }
    };
}

contract!(
    ids_increase_and_history_pages_newest_first,
    after_is_exclusive_and_ordered,
    wait_after_wakes_on_append_and_times_out,
    history_is_capped,
    rooms_are_isolated_and_listed_by_activity,
    presence_counts_expires_and_leaves,
    rate_buckets_give_the_burst_then_refuse_with_the_wait,
    read_markers_clamp_never_go_back_and_count_unread,
    typing_signals_reach_listeners_and_are_not_stored,
);

/// Appends get increasing ids; history pages newest first with an exclusive `before` cursor.
async fn ids_increase_and_history_pages_newest_first(make: fn(usize) -> Fixture) {
    let f = make(1000);
    let mut ids = Vec::new();
    for i in 0..25 {
        let m = f
            .store
            .append("lobby", "alice", &format!("m{i}"))
            .await
            .unwrap();
        assert_eq!(m.author, "alice");
        ids.push(m.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    assert_eq!(f.store.last_id("lobby").await.unwrap(), ids[24]);
    let page1 = f.store.history("lobby", None, 10).await.unwrap();
    assert_eq!(
        page1.iter().map(|m| m.text.as_str()).collect::<Vec<_>>()[..3],
        ["m24", "m23", "m22"]
    );
    let page2 = f
        .store
        .history("lobby", Some(page1[9].id), 10)
        .await
        .unwrap();
    assert_eq!(page2[0].text, "m14");
    let page3 = f
        .store
        .history("lobby", Some(page2[9].id), 10)
        .await
        .unwrap();
    assert_eq!(page3.len(), 5);
    assert_eq!(page3[4].text, "m0");
    assert!(f
        .store
        .history("lobby", Some(ids[0]), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(f.store.history("empty", None, 10).await.unwrap().is_empty());
    assert_eq!(f.store.last_id("empty").await.unwrap(), MessageId::ZERO);
}

/// `after` returns strictly newer messages, oldest first, limited.
async fn after_is_exclusive_and_ordered(make: fn(usize) -> Fixture) {
    let f = make(1000);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            f.store
                .append("r", "bob", &format!("{i}"))
                .await
                .unwrap()
                .id,
        );
    }
    let got = f.store.after("r", ids[1], 100).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[2..].to_vec()
    );
    assert_eq!(
        f.store.after("r", MessageId::ZERO, 2).await.unwrap().len(),
        2
    );
    assert!(f.store.after("r", ids[4], 100).await.unwrap().is_empty());
}

/// A blocked live read returns as soon as a message is appended, and empty after its timeout.
async fn wait_after_wakes_on_append_and_times_out(make: fn(usize) -> Fixture) {
    let f = make(1000);
    let last = f.store.last_id("live").await.unwrap();
    let store = f.store.clone();
    let waiter = tokio::spawn(async move {
        store
            .wait_after("live", last, 10, Duration::from_secs(5))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = f.store.append("live", "carol", "hello").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, vec![sent.clone()]);
    let t = std::time::Instant::now();
    let none = f
        .store
        .wait_after("live", sent.id, 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(150));
}

/// History keeps about `history_len` messages (Redis trims approximately: never fewer).
async fn history_is_capped(make: fn(usize) -> Fixture) {
    let f = make(10);
    for i in 0..300 {
        f.store.append("cap", "dan", &format!("{i}")).await.unwrap();
    }
    let all = f.store.after("cap", MessageId::ZERO, 1000).await.unwrap();
    assert!(all.len() >= 10 && all.len() < 300, "kept {}", all.len());
    assert_eq!(all.last().unwrap().text, "299");
}

/// Rooms don't see each other's messages; the room list is ordered by last activity.
async fn rooms_are_isolated_and_listed_by_activity(make: fn(usize) -> Fixture) {
    let f = make(1000);
    f.store.append("a", "u", "in a").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    f.store.append("b", "u", "in b").await.unwrap();
    assert_eq!(f.store.history("a", None, 10).await.unwrap().len(), 1);
    assert_eq!(
        f.store.history("b", None, 10).await.unwrap()[0].text,
        "in b"
    );
    let rooms: Vec<String> = f
        .store
        .rooms(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(rooms, ["b", "a"]);
    assert_eq!(f.store.rooms(1).await.unwrap().len(), 1);
}

/// Presence counts distinct users, drops those silent for longer than the TTL, and Leave is immediate.
async fn presence_counts_expires_and_leaves(make: fn(usize) -> Fixture) {
    let f = make(1000);
    let ttl = Duration::from_secs(30);
    let t0 = now_ms();
    assert_eq!(f.store.heartbeat("p", "alice", t0, ttl).await.unwrap(), 1);
    assert_eq!(
        f.store
            .heartbeat("p", "bob", t0 + 1_000, ttl)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        f.store
            .heartbeat("p", "alice", t0 + 2_000, ttl)
            .await
            .unwrap(),
        2,
        "heartbeats don't double count"
    );
    let online = f.store.online("p", t0 + 3_000, ttl).await.unwrap();
    assert_eq!(
        online,
        vec![("alice".into(), t0 + 2_000), ("bob".into(), t0 + 1_000)]
    );
    // 31.5 s after bob's last heartbeat he is gone; alice (2 s later) is still there.
    let later = t0 + 1_000 + 30_500;
    assert_eq!(f.store.online("p", later, ttl).await.unwrap().len(), 1);
    assert_eq!(f.store.leave("p", "alice", later, ttl).await.unwrap(), 0);
    assert!(f.store.online("p", later, ttl).await.unwrap().is_empty());
    assert!(f
        .store
        .online("nobody-here", t0, ttl)
        .await
        .unwrap()
        .is_empty());
}

/// A bucket gives `burst` tokens at once, then refuses with the time until the next one;
/// buckets are independent.
async fn rate_buckets_give_the_burst_then_refuse_with_the_wait(make: fn(usize) -> Fixture) {
    let f = make(100);
    for _ in 0..3 {
        assert_eq!(f.store.take_token("b1", 1.0, 3.0).await.unwrap(), Ok(()));
    }
    let wait = f
        .store
        .take_token("b1", 1.0, 3.0)
        .await
        .unwrap()
        .unwrap_err();
    assert!((900..=1000).contains(&wait), "{wait} ms");
    assert_eq!(f.store.take_token("b2", 1.0, 3.0).await.unwrap(), Ok(()));
}

/// Read markers: clamped to the newest message, never moved back, absent for empty rooms;
/// the unread count is the others' messages after the marker, capped.
async fn read_markers_clamp_never_go_back_and_count_unread(make: fn(usize) -> Fixture) {
    let f = make(1000);
    let s = &f.store;
    let far = MessageId {
        ms: u64::MAX / 2,
        seq: 0,
    };
    assert_eq!(s.mark_read("empty", "alice", far).await.unwrap(), None);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(s.append("r", "bob", &format!("{i}")).await.unwrap().id);
    }
    assert_eq!(
        s.mark_read("r", "alice", ids[1]).await.unwrap(),
        Some(ids[1])
    );
    assert_eq!(
        s.mark_read("r", "alice", ids[0]).await.unwrap(),
        Some(ids[1]),
        "never back"
    );
    let rooms = vec!["r".to_string(), "empty".to_string()];
    let unread = s.unread("alice", &rooms, 100).await.unwrap();
    assert_eq!(unread, vec![Some((ids[1], 3)), None]);
    // Alice's own messages don't count; the cap does.
    s.append("r", "alice", "mine").await.unwrap();
    assert_eq!(
        s.unread("alice", &rooms, 100).await.unwrap()[0],
        Some((ids[1], 3))
    );
    assert_eq!(
        s.unread("alice", &rooms, 2).await.unwrap()[0],
        Some((ids[1], 2))
    );
    assert_eq!(
        s.unread("carol", &rooms, 100).await.unwrap()[0],
        None,
        "no marker"
    );
    // Past the newest message: clamped to it, so nothing is unread.
    let newest = s.last_id("r").await.unwrap();
    assert_eq!(s.mark_read("r", "alice", far).await.unwrap(), Some(newest));
    assert_eq!(
        s.unread("alice", &rooms, 100).await.unwrap()[0],
        Some((newest, 0))
    );
}

/// A typing signal reaches the room's listeners (and only that room's), and leaves nothing
/// in the room's history.
async fn typing_signals_reach_listeners_and_are_not_stored(make: fn(usize) -> Fixture) {
    use futures::StreamExt as _;
    let f = make(100);
    let mut t = f.store.typing_stream("t").await.unwrap();
    let mut other = f.store.typing_stream("other").await.unwrap();
    let signal = pfc_chat::Typing {
        user: "alice".into(),
        typing: true,
    };
    // Pub/Sub subscriptions take effect asynchronously: publish until one arrives.
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            f.store.publish_typing("t", &signal).await.unwrap();
            if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(100), t.next()).await
            {
                break got;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, signal);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.next())
            .await
            .is_err(),
        "other rooms hear nothing"
    );
    assert!(f.store.history("t", None, 10).await.unwrap().is_empty());
    assert_eq!(f.store.last_id("t").await.unwrap(), MessageId::ZERO);
}
