//! The schedule store on a real Redis Cluster (3 masters, no replicas, on loopback): every
//! script declares only keys of the `{schedules}` slot, so each runs whole on one node, and
//! the schedule contract — with the Redis job store beside it on the same cluster — passes.

use std::sync::Arc;

use pfc_queue::{JobStore, RedisConnections, RedisMode, RedisStore, StoreConfig};
use pfc_schedule::{contract, RedisScheduleStore, ScheduleStore};
use pfc_testkit::RedisCluster;

fn stores(c: &RedisCluster) -> (Arc<dyn ScheduleStore>, Arc<dyn JobStore>) {
    let mode = RedisMode {
        cluster: true,
        wait_replicas: 0,
    };
    let conns = RedisConnections::open(&c.urls(), &mode).expect("cluster connections");
    let jobs = RedisStore::open(&c.urls(), StoreConfig::default(), &mode).expect("cluster store");
    (Arc::new(RedisScheduleStore::new(conns)), jobs)
}

/// Every check of the schedule contract passes on a Redis Cluster (each on an emptied
/// cluster with fresh stores).
#[tokio::test]
async fn schedule_contract_passes_on_a_cluster() {
    let c = RedisCluster::start(3, 0);
    macro_rules! check {
        ($($name:ident => |$s:ident, $j:ident| $body:expr;)*) => {$(
            c.flush();
            let ($s, $j) = stores(&c);
            let _ = &$j;
            $body.await;
            eprintln!("cluster schedule contract: {} ok", stringify!($name));
        )*};
    }
    check! {
        crud => |s, j| contract::crud(s);
        compare_and_set => |s, j| contract::compare_and_set(s);
        one_job_per_tick => |s, j| contract::one_job_per_tick(s, j);
        catch_up => |s, j| contract::catch_up(s, j);
        delayed_ticks_each_fire => |s, j| contract::delayed_ticks_each_fire(s, j);
        paused_fires_nothing => |s, j| contract::paused_fires_nothing(s, j);
        bad_template_is_recorded => |s, j| contract::bad_template_is_recorded(s, j);
    }
}
