//! Runs the store contract (`pfc_queue::contract`) against both implementations: the
//! in-memory store and the Redis store on a real redis-server started for each test.

use std::sync::Arc;
use std::time::Duration;

use pfc_queue::{contract, JobStore, MemoryStore, RedisStore, StoreConfig};
use pfc_testkit::RedisServer;

const LEASE: Duration = Duration::from_millis(600);
const RETENTION: Duration = Duration::from_millis(800);

fn config() -> StoreConfig {
    StoreConfig {
        retention: RETENTION,
        lease: LEASE,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(200),
        worker_ttl: Duration::from_secs(5),
    }
}

fn memory() -> Arc<dyn JobStore> {
    Arc::new(MemoryStore::new(config()))
}

fn redis() -> (RedisServer, Arc<dyn JobStore>) {
    let server = RedisServer::start();
    let store = RedisStore::new(&server.url(), config()).expect("redis store");
    (server, store)
}

macro_rules! contract_tests {
    ($($name:ident => |$s:ident| $body:expr;)*) => {
        mod memory_store {
            use super::*;
            $(
                /// Contract check on the in-memory store.
                #[tokio::test]
                async fn $name() {
                    let $s = memory();
                    $body.await;
                }
            )*
        }
        mod redis_store {
            use super::*;
            $(
                /// Contract check on the Redis store (real redis-server).
                #[tokio::test]
                async fn $name() {
                    let (_server, $s) = redis();
                    $body.await;
                }
            )*
        }
    };
}

contract_tests! {
    submit_take_complete => |s| contract::submit_take_complete(&*s);
    fifo_and_batch => |s| contract::fifo_and_batch(&*s);
    take_waits_for_submit => |s| contract::take_waits_for_submit(s.clone());
    expired_lease_redelivers => |s| contract::expired_lease_redelivers(&*s);
    heartbeat_renews => |s| contract::heartbeat_renews(&*s, LEASE);
    retries_then_fails => |s| contract::retries_then_fails(&*s);
    delayed_job => |s| contract::delayed_job(&*s);
    idempotent_submit => |s| contract::idempotent_submit(&*s);
    cancel => |s| contract::cancel(&*s);
    retention_expires => |s| contract::retention_expires(&*s, RETENTION);
    list_pages => |s| contract::list_pages(&*s);
    events_are_published => |s| contract::events_are_published(&*s);
    release_requeues => |s| contract::release_requeues(&*s);
    abandon_counts_the_attempt => |s| contract::abandon_counts_the_attempt(&*s);
    kinds_route_jobs => |s| contract::kinds_route_jobs(&*s);
    payloads_and_progress => |s| contract::payloads_and_progress(&*s);
    named_queues => |s| contract::named_queues(&*s);
    named_queue_events => |s| contract::named_queue_events(&*s);
    priorities => |s| contract::priorities(&*s);
    pause_and_resume => |s| contract::pause_and_resume(&*s);
    concurrency_limit => |s| contract::concurrency_limit(s.clone());
    rate_limit => |s| contract::rate_limit(&*s);
}
