//! Runs the schedule contract (`pfc_schedule::contract`) on both stores: memory, and Redis on
//! a real redis-server started for each test (with the Redis job store beside it).

use std::sync::Arc;

use pfc_queue::{JobStore, MemoryStore, RedisStore, StoreArgs, StoreConfig};
use pfc_schedule::{contract, MemoryScheduleStore, RedisScheduleStore, ScheduleStore};
use pfc_testkit::RedisServer;

fn memory() -> (
    Option<RedisServer>,
    Arc<dyn ScheduleStore>,
    Arc<dyn JobStore>,
) {
    (
        None,
        Arc::new(MemoryScheduleStore::new()),
        Arc::new(MemoryStore::new(StoreConfig::default())),
    )
}

fn redis() -> (
    Option<RedisServer>,
    Arc<dyn ScheduleStore>,
    Arc<dyn JobStore>,
) {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct A {
        #[command(flatten)]
        s: StoreArgs,
    }
    let server = RedisServer::start();
    let args = A::parse_from(["t", "--redis-url", &server.url()]).s;
    let conns = args.redis_connections().unwrap().expect("a url is set");
    let jobs = RedisStore::new(&server.url(), StoreConfig::default()).unwrap();
    (Some(server), Arc::new(RedisScheduleStore::new(conns)), jobs)
}

macro_rules! both {
    ($($name:ident => |$s:ident, $j:ident| $body:expr;)*) => {
        mod memory_store {
            use super::*;
            $(
                /// Contract check on the in-memory store.
                #[tokio::test]
                async fn $name() {
                    let (_srv, $s, $j) = memory();
                    let _ = &$j;
                    $body.await;
                }
            )*
        }
        mod redis_store {
            use super::*;
            $(
                /// Contract check on the Redis store.
                #[tokio::test]
                async fn $name() {
                    let (_srv, $s, $j) = redis();
                    let _ = &$j;
                    $body.await;
                }
            )*
        }
    };
}

both! {
    crud => |s, j| contract::crud(s);
    compare_and_set => |s, j| contract::compare_and_set(s);
    one_job_per_tick => |s, j| contract::one_job_per_tick(s, j);
    catch_up => |s, j| contract::catch_up(s, j);
    delayed_ticks_each_fire => |s, j| contract::delayed_ticks_each_fire(s, j);
    paused_fires_nothing => |s, j| contract::paused_fires_nothing(s, j);
    bad_template_is_recorded => |s, j| contract::bad_template_is_recorded(s, j);
}
