//! The checker state machine under a manual clock, one rule per test.

use std::time::Duration;

use rvs_api::{DestConfig, ForwardMethod, Protocol, Request, ServiceKey};
use rvs_health::check::{Action, Event, Monitor, MonitorOptions, ProbeRequest, Targets};
use rvs_health::config::Model;
use rvs_health::probe::{Outcome, ProbeError, StdProber};
use rvs_health::time::Instant;

fn targets(conf: &str) -> Targets {
    let (model, _) = Model::parse_str("m.conf", conf).expect("configuration parses");
    Targets::from_model(&model, &StdProber).0
}

fn monitor(conf: &str) -> Monitor {
    Monitor::new(
        targets(conf),
        Instant::ZERO,
        MonitorOptions {
            seed: 1,
            drain: None,
        },
    )
}

fn actions(m: &mut Monitor) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn requests(m: &mut Monitor) -> Vec<Request> {
    actions(m).iter().filter_map(Action::request).collect()
}

fn probes(m: &mut Monitor, now: Instant) -> Vec<ProbeRequest> {
    m.handle_timeout(now);
    std::iter::from_fn(|| m.poll_probe()).collect()
}

fn pass() -> Outcome {
    Outcome::Pass
}

fn fail() -> Outcome {
    Outcome::Fail(ProbeError::NoReply)
}

fn at(secs: f64) -> Instant {
    Instant::from_micros((secs * 1e6) as u64)
}

/// Run every due probe at `now` with the outcome `f` gives for its index.
fn step(m: &mut Monitor, now: Instant, f: impl Fn(usize) -> Outcome) -> usize {
    let ps = probes(m, now);
    for (i, p) in ps.iter().enumerate() {
        m.handle_result(now, p.id, p.seq, &f(i));
    }
    ps.len()
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "198.18.0.1".parse().expect("addr"),
        port: 80,
    }
}

fn dest(last: u8, weight: i32) -> DestConfig {
    let mut d = DestConfig::new(format!("198.19.0.{last}").parse().expect("addr"), 80);
    d.method = ForwardMethod::Masq;
    d.weight = weight;
    d
}

fn del(last: u8) -> Request {
    Request::DelDest {
        service: key(),
        addr: format!("198.19.0.{last}").parse().expect("addr"),
        port: 80,
    }
}

fn edit(last: u8, weight: i32) -> Request {
    Request::EditDest {
        service: key(),
        dest: dest(last, weight),
    }
}

fn add(last: u8, weight: i32) -> Request {
    Request::AddDest {
        service: key(),
        dest: dest(last, weight),
    }
}

const ONE: &str = "virtual_server 198.18.0.1 80 {\n  delay_loop 10\n  real_server 198.19.0.1 80 {\n    weight 3\n    \
                   TCP_CHECK {\n      warmup 0\n      retry 2\n      delay_before_retry 1\n      connect_timeout 2\n    }\n  }\n}\n";

#[test]
fn start_adds_services_and_up_servers() {
    let mut m = monitor(ONE);
    assert_eq!(
        requests(&mut m),
        [
            Request::AddService(rvs_api::ServiceConfig::new(key())),
            add(1, 3)
        ]
    );
    assert_eq!(
        m.poll_timeout(),
        Some(Instant::ZERO),
        "warmup 0: first check at once"
    );
}

#[test]
fn warmup_is_random_within_bound_and_seeded() {
    let conf = "virtual_server 198.18.0.1 80 {\n  delay_loop 30\n  real_server 198.19.0.1 80 {\n    TCP_CHECK {\n    }\n    TCP_CHECK {\n      connect_port 81\n    }\n  }\n}\n";
    let a = monitor(conf);
    let b = monitor(conf);
    let first = a.poll_timeout().expect("scheduled");
    assert_eq!(Some(first), b.poll_timeout(), "same seed, same schedule");
    assert!(
        first <= Instant::from_secs(30),
        "warmup defaults to delay_loop"
    );
    let c = Monitor::new(
        targets(conf),
        Instant::ZERO,
        MonitorOptions {
            seed: 99,
            drain: None,
        },
    );
    assert_ne!(
        c.poll_timeout(),
        Some(first),
        "another seed spreads checks differently"
    );
}

#[test]
fn delay_loop_after_success_and_retry_before_failure() {
    let mut m = monitor(ONE);
    actions(&mut m);
    assert_eq!(step(&mut m, at(0.0), |_| pass()), 1);
    assert_eq!(
        m.poll_timeout(),
        Some(at(10.0)),
        "next check after delay_loop"
    );
    assert_eq!(step(&mut m, at(9.9), |_| pass()), 0, "nothing due before");
    // retry 2: two tolerated failures, delay_before_retry apart, then down.
    assert_eq!(step(&mut m, at(10.0), |_| fail()), 1);
    assert!(requests(&mut m).is_empty(), "first failure is tolerated");
    assert_eq!(m.poll_timeout(), Some(at(11.0)));
    assert_eq!(step(&mut m, at(11.0), |_| fail()), 1);
    assert!(requests(&mut m).is_empty(), "second failure is tolerated");
    assert_eq!(step(&mut m, at(12.0), |_| fail()), 1);
    let acts = actions(&mut m);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Notify(n) if n.event == Event::RealDown))
    );
    assert_eq!(
        acts.iter().filter_map(Action::request).collect::<Vec<_>>(),
        [del(1)]
    );
    assert_eq!(
        m.poll_timeout(),
        Some(at(22.0)),
        "a down checker waits delay_loop"
    );
    // A single success brings it back.
    assert_eq!(step(&mut m, at(22.0), |_| pass()), 1);
    assert_eq!(requests(&mut m), [add(1, 3)]);
}

#[test]
fn success_resets_the_retry_count() {
    let mut m = monitor(ONE);
    actions(&mut m);
    step(&mut m, at(0.0), |_| fail());
    step(&mut m, at(1.0), |_| fail());
    step(&mut m, at(2.0), |_| pass());
    step(&mut m, at(12.0), |_| fail());
    step(&mut m, at(13.0), |_| fail());
    assert!(requests(&mut m).is_empty(), "never three failures in a row");
}

#[test]
fn unanswered_probe_times_out_after_connect_timeout() {
    let conf = ONE.replace("retry 2", "retry 0");
    let mut m = monitor(&conf);
    actions(&mut m);
    let p = probes(&mut m, at(0.0));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].spec.timeout, Duration::from_secs(2));
    assert_eq!(m.poll_timeout(), Some(at(3.0)), "connect_timeout + grace");
    m.handle_timeout(at(2.9));
    assert!(requests(&mut m).is_empty());
    m.handle_timeout(at(3.0));
    assert_eq!(requests(&mut m), [del(1)]);
    // The late answer is stale and ignored.
    m.handle_result(at(3.5), p[0].id, p[0].seq, &pass());
    assert!(requests(&mut m).is_empty());
}

#[test]
fn alpha_starts_down_and_inhibit_uses_weight_zero() {
    let conf = "virtual_server 198.18.0.1 80 {\n  alpha\n  inhibit_on_failure\n  real_server 198.19.0.1 80 {\n    weight 4\n    \
                TCP_CHECK {\n      warmup 0\n      retry 0\n      delay_loop 5\n    }\n  }\n}\n";
    let mut m = monitor(conf);
    let start = requests(&mut m);
    assert_eq!(
        start[1],
        add(1, 0),
        "alpha + inhibit: listed at weight 0 until checked"
    );
    step(&mut m, at(0.0), |_| pass());
    assert_eq!(requests(&mut m), [edit(1, 4)]);
    step(&mut m, at(5.0), |_| fail());
    assert_eq!(
        requests(&mut m),
        [edit(1, 0)],
        "inhibit_on_failure: weight 0, not removal"
    );
}

#[test]
fn alpha_without_inhibit_adds_on_first_success() {
    let conf = ONE.replace("    weight 3\n", "    weight 3\n    alpha\n");
    let mut m = monitor(&conf);
    assert_eq!(requests(&mut m).len(), 1, "only the service");
    step(&mut m, at(0.0), |_| pass());
    assert_eq!(requests(&mut m), [add(1, 3)]);
}

#[test]
fn every_checker_must_pass() {
    let conf = "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    \
                TCP_CHECK {\n      warmup 0\n      retry 0\n      delay_loop 5\n    }\n    \
                TCP_CHECK {\n      warmup 0\n      retry 0\n      delay_loop 5\n      connect_port 81\n    }\n  }\n}\n";
    let mut m = monitor(conf);
    actions(&mut m);
    step(&mut m, at(0.0), |i| if i == 0 { pass() } else { fail() });
    assert_eq!(
        requests(&mut m),
        [del(1)],
        "one failing checker takes it down"
    );
    step(&mut m, at(5.0), |i| if i == 0 { fail() } else { pass() });
    assert!(requests(&mut m).is_empty(), "still one failing");
    step(&mut m, at(10.0), |_| pass());
    assert_eq!(requests(&mut m), [add(1, 1)]);
    let st = m.status();
    assert!(st[0].up);
    assert_eq!(
        st[0].checks,
        [("tcp".to_owned(), true), ("tcp".to_owned(), true)]
    );
}

/// The 1.7 example's HTTPS service shape: weights 100+100+50, quorum 150,
/// hysteresis 50 (down below 100, up again at 200), sorry server, inhibit, alpha.
const QUORUM: &str = "virtual_server 198.18.0.1 80 {\n  alpha\n  quorum 150\n  hysteresis 50\n  \
    quorum_up \"/bin/logger up\"\n  quorum_down \"/bin/logger down\"\n  sorry_server 198.19.0.250 80\n  inhibit_on_failure\n  \
    real_server 198.19.0.1 80 {\n    weight 100\n    TCP_CHECK {\n      warmup 0\n      retry 0\n      delay_loop 5\n    }\n  }\n  \
    real_server 198.19.0.2 80 {\n    weight 100\n    TCP_CHECK {\n      warmup 0\n      retry 0\n      delay_loop 5\n    }\n  }\n  \
    real_server 198.19.0.3 80 {\n    weight 50\n    TCP_CHECK {\n      warmup 0\n      retry 0\n      delay_loop 5\n    }\n  }\n}\n";

#[test]
fn quorum_with_hysteresis_and_sorry_server() {
    let mut m = monitor(QUORUM);
    let start = actions(&mut m);
    let quorum_down = start.iter().find_map(|a| match a {
        Action::Notify(n) if n.event == Event::QuorumDown => Some(n.clone()),
        _ => None,
    });
    assert_eq!(
        quorum_down.and_then(|n| n.script).map(|s| s.command),
        Some("/bin/logger down".to_owned()),
        "alpha: no live weight at start, quorum_down runs"
    );
    assert!(
        start
            .iter()
            .any(|a| matches!(a, Action::ActivateSorry { edit: false, .. }))
    );
    let reqs: Vec<Request> = start.iter().filter_map(Action::request).collect();
    assert_eq!(&reqs[1..], [add(1, 0), add(2, 0), add(3, 0), add(250, 1)]);

    // 100 up: below quorum + hysteresis (200), the sorry server stays.
    step(&mut m, at(0.0), |i| if i == 0 { pass() } else { fail() });
    assert!(requests(&mut m).is_empty());
    assert_eq!(m.quorum(), [(key(), false)]);
    // 200 up: quorum regained, real servers get their weights, the sorry server leaves.
    step(&mut m, at(5.0), |i| if i == 2 { fail() } else { pass() });
    let acts = actions(&mut m);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Notify(n) if n.event == Event::QuorumUp))
    );
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::DeactivateSorry { remove: true, .. }))
    );
    assert_eq!(
        acts.iter().filter_map(Action::request).collect::<Vec<_>>(),
        [del(250), edit(1, 100), edit(2, 100)]
    );
    // Down to 100: not below quorum - hysteresis (100), still up.
    step(&mut m, at(10.0), |i| {
        if i == 1 {
            fail()
        } else if i == 0 {
            pass()
        } else {
            fail()
        }
    });
    assert_eq!(requests(&mut m), [edit(2, 0)]);
    assert_eq!(m.quorum(), [(key(), true)]);
    // Down to 0: quorum lost, every real server pulled (weight 0: inhibited), sorry added.
    step(&mut m, at(15.0), |_| fail());
    let acts = actions(&mut m);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Notify(n) if n.event == Event::QuorumDown))
    );
    assert_eq!(
        acts.iter().filter_map(Action::request).collect::<Vec<_>>(),
        [edit(1, 0), add(250, 1)]
    );
}

#[test]
fn sorry_server_inhibit_keeps_it_listed() {
    let conf = QUORUM.replace("  inhibit_on_failure\n", "  sorry_server_inhibit\n");
    let mut m = monitor(&conf);
    let reqs = requests(&mut m);
    assert_eq!(
        &reqs[1..],
        [add(250, 1)],
        "alpha without inhibit: real servers wait"
    );
    step(&mut m, at(0.0), |_| pass());
    assert_eq!(
        requests(&mut m),
        [edit(250, 0), add(1, 100), add(2, 100), add(3, 50)]
    );
    step(&mut m, at(5.0), |_| fail());
    assert_eq!(requests(&mut m), [del(1), del(2), del(3), edit(250, 1)]);
}

#[test]
fn misc_dynamic_exit_codes_set_weights() {
    let conf = "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    weight 10\n    \
                MISC_CHECK {\n      misc_path \"/bin/check arg\"\n      misc_dynamic\n      warmup 0\n      delay_loop 5\n      misc_timeout 3\n    }\n  }\n}\n";
    let mut m = monitor(conf);
    actions(&mut m);
    let p = probes(&mut m, at(0.0));
    assert_eq!(
        p[0].spec.timeout,
        Duration::from_secs(3),
        "misc_timeout bounds the script"
    );
    // Exit 9 -> weight 7.
    m.handle_result(at(0.0), p[0].id, p[0].seq, &Outcome::Weight(7));
    assert_eq!(requests(&mut m), [edit(1, 7)]);
    // Exit 0 -> up, weight unchanged.
    step(&mut m, at(5.0), |_| pass());
    assert!(requests(&mut m).is_empty());
    assert_eq!(m.status()[0].weight, 7);
    // Exit 1 -> down (retry 0 by default for MISC).
    step(&mut m, at(10.0), |_| Outcome::Fail(ProbeError::Exit(1)));
    assert_eq!(requests(&mut m), [del(1)]);
    // Exit 2 -> up with weight 0 (quiescent).
    step(&mut m, at(15.0), |_| Outcome::Weight(0));
    assert_eq!(requests(&mut m), [add(1, 0)]);
}

#[test]
fn servers_without_checkers_are_always_up() {
    let mut m = monitor("virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n  }\n}\n");
    assert_eq!(requests(&mut m).len(), 2);
    assert_eq!(m.poll_timeout(), None, "nothing to schedule");
}

#[test]
fn reload_keeps_state_and_applies_only_differences() {
    let two = "virtual_server 198.18.0.1 80 {\n  \
        real_server 198.19.0.1 80 {\n    TCP_CHECK {\n      warmup 0\n      retry 0\n      delay_loop 5\n    }\n  }\n  \
        real_server 198.19.0.2 80 {\n    TCP_CHECK {\n      warmup 0\n      retry 0\n      delay_loop 5\n    }\n  }\n}\n";
    let mut m = monitor(two);
    actions(&mut m);
    step(&mut m, at(0.0), |i| if i == 0 { fail() } else { pass() });
    assert_eq!(requests(&mut m), [del(1)]);

    // Same file: nothing happens, the failed server stays out (no instant re-add).
    m.reload(targets(two), at(1.0));
    assert!(requests(&mut m).is_empty());
    assert!(!m.status()[0].up);

    // A third server with alpha waits for its checker; the second one's weight changes.
    let three = two.replace(
        "  real_server 198.19.0.2 80 {\n",
        "  real_server 198.19.0.3 80 {\n    alpha\n    TCP_CHECK {\n      warmup 0\n    }\n  }\n  real_server 198.19.0.2 80 {\n    weight 6\n",
    );
    m.reload(targets(&three), at(2.0));
    assert_eq!(requests(&mut m), [edit(2, 6)]);
    // Removing the failed one changes nothing in the table; removing a live one deletes it.
    let only3 = "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.3 80 {\n    alpha\n    TCP_CHECK {\n      warmup 0\n    }\n  }\n}\n";
    m.reload(targets(only3), at(3.0));
    assert_eq!(requests(&mut m), [del(2)]);
    // Removing the service deletes it.
    m.reload(targets("virtual_server 198.18.0.2 80 {\n}\n"), at(4.0));
    let reqs = requests(&mut m);
    assert_eq!(reqs[0], Request::DelService(key()));
}

#[test]
fn reload_with_drain_quiesces_then_deletes() {
    let two = "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    weight 2\n  }\n  real_server 198.19.0.2 80 {\n  }\n}\n";
    let mut m = Monitor::new(
        targets(two),
        Instant::ZERO,
        MonitorOptions {
            seed: 1,
            drain: Some(Duration::from_secs(30)),
        },
    );
    actions(&mut m);
    let one = "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.2 80 {\n  }\n}\n";
    m.reload(targets(one), at(10.0));
    assert_eq!(requests(&mut m), [edit(1, 0)], "weight 0 first");
    assert_eq!(m.poll_timeout(), Some(at(40.0)));
    m.handle_timeout(at(39.0));
    assert!(requests(&mut m).is_empty());
    m.handle_timeout(at(40.0));
    assert_eq!(requests(&mut m), [del(1)], "deleted after the drain period");

    // A drained server that comes back before the end is restored, not re-added.
    m.reload(targets(two), at(50.0));
    assert_eq!(requests(&mut m), [add(1, 2)]);
    m.reload(targets(one), at(60.0));
    assert_eq!(requests(&mut m), [edit(1, 0)]);
    m.reload(targets(two), at(70.0));
    assert_eq!(requests(&mut m), [edit(1, 2)]);
    m.handle_timeout(at(100.0));
    assert!(
        requests(&mut m).is_empty(),
        "the cancelled drain deletes nothing"
    );
}

#[test]
fn shutdown_deletes_services_and_reports_omega() {
    let conf = QUORUM.replace("  alpha\n", "  omega\n");
    let mut m = monitor(&conf);
    actions(&mut m);
    let acts = m.shutdown();
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Notify(n) if n.event == Event::QuorumDown))
    );
    assert_eq!(
        acts.iter().filter_map(Action::request).collect::<Vec<_>>(),
        [Request::DelService(key())]
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_group_shares_one_checker_across_its_services() {
    let conf = "virtual_server_group G {\n  198.18.0.1 80\n  198.18.0.2 80\n}\nvirtual_server group G {\n  \
                real_server 198.19.0.1 80 {\n    TCP_CHECK {\n      warmup 0\n      retry 0\n    }\n  }\n}\n";
    let mut m = monitor(conf);
    assert_eq!(
        requests(&mut m).len(),
        4,
        "two services, one destination each"
    );
    assert_eq!(
        step(&mut m, at(0.0), |_| fail()),
        1,
        "one probe for both services"
    );
    let other = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "198.18.0.2".parse().expect("addr"),
        port: 80,
    };
    assert_eq!(
        requests(&mut m),
        [
            del(1),
            Request::DelDest {
                service: other,
                addr: "198.19.0.1".parse().expect("addr"),
                port: 80
            }
        ]
    );
}

mod props {
    use std::collections::{BTreeMap, HashMap};
    use std::net::IpAddr;
    use std::time::Duration;

    use proptest::prelude::*;
    use rvs_api::{DestConfig, Request, ServiceConfig, ServiceKey};
    use rvs_health::check::{Monitor, MonitorOptions};
    use rvs_health::probe::{Outcome, ProbeError};
    use rvs_health::time::Instant;

    use super::{QUORUM, actions, probes, targets};

    type Table = HashMap<ServiceKey, (ServiceConfig, BTreeMap<(IpAddr, u16), DestConfig>)>;

    /// Apply a request to a model of the balancer table, refusing what the
    /// daemon would refuse (EEXIST, ENOENT, ESRCH).
    fn apply(t: &mut Table, r: &Request) -> Result<(), String> {
        match r {
            Request::AddService(s) => {
                if t.insert(s.key, (s.clone(), BTreeMap::new())).is_some() {
                    return Err(format!("service exists: {r:?}"));
                }
            }
            Request::EditService(s) => {
                t.get_mut(&s.key).ok_or(format!("no service: {r:?}"))?.0 = s.clone();
            }
            Request::DelService(k) => {
                t.remove(k).ok_or(format!("no service: {r:?}"))?;
            }
            Request::AddDest { service, dest } => {
                let s = t.get_mut(service).ok_or(format!("no service: {r:?}"))?;
                if s.1.insert((dest.addr, dest.port), dest.clone()).is_some() {
                    return Err(format!("dest exists: {r:?}"));
                }
            }
            Request::EditDest { service, dest } => {
                let s = t.get_mut(service).ok_or(format!("no service: {r:?}"))?;
                let d =
                    s.1.get_mut(&(dest.addr, dest.port))
                        .ok_or(format!("no dest: {r:?}"))?;
                *d = dest.clone();
            }
            Request::DelDest {
                service,
                addr,
                port,
            } => {
                let s = t.get_mut(service).ok_or(format!("no service: {r:?}"))?;
                s.1.remove(&(*addr, *port))
                    .ok_or(format!("no dest: {r:?}"))?;
            }
            other => return Err(format!("unexpected {other:?}")),
        }
        Ok(())
    }

    fn flat(v: Vec<(ServiceConfig, Vec<DestConfig>)>) -> Table {
        v.into_iter()
            .map(|(s, ds)| {
                (
                    s.key,
                    (s, ds.into_iter().map(|d| ((d.addr, d.port), d)).collect()),
                )
            })
            .collect()
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// Advance 5 s and answer due probes with these verdicts.
        Probe(Vec<bool>),
        /// Reload configuration n (0..6).
        Reload(usize),
        /// Advance to drain expiry.
        Wait,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => proptest::collection::vec(any::<bool>(), 3).prop_map(Step::Probe),
            1 => (0..6usize).prop_map(Step::Reload),
            1 => Just(Step::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        /// Whatever the probe results and reloads, every request applies cleanly
        /// to the table the previous ones built, and the table ends up equal to
        /// what the monitor says is applied once drains are over.
        #[test]
        fn actions_keep_the_table_consistent(steps in proptest::collection::vec(step(), 1..40), drain in any::<bool>()) {
            let confs = [
                QUORUM.to_owned(),
                QUORUM.replace("    weight 50\n", "    weight 70\n").replace("  alpha\n", ""),
                QUORUM.replace("  real_server 198.19.0.2 80 {\n    weight 100\n", "  real_server 198.19.0.4 80 {\n    weight 100\n"),
                QUORUM.replace("  inhibit_on_failure\n", "  sorry_server_inhibit\n"),
                QUORUM.replace("198.18.0.1 80", "198.18.0.2 80"),
                format!("virtual_server_group G {{\n  198.18.0.1 80\n  198.18.0.3 80\n}}\n{}", QUORUM.replace("virtual_server 198.18.0.1 80", "virtual_server group G")),
            ];
            let opts = MonitorOptions { seed: 3, drain: drain.then_some(Duration::from_secs(20)) };
            let mut m = Monitor::new(targets(&confs[0]), Instant::ZERO, opts);
            let mut table = Table::new();
            let mut now = 0u64;
            let run = |m: &mut Monitor, table: &mut Table| -> Result<(), TestCaseError> {
                for a in actions(m) {
                    if let Some(r) = a.request() {
                        apply(table, &r).map_err(TestCaseError::fail)?;
                    }
                }
                Ok(())
            };
            run(&mut m, &mut table)?;
            for s in steps {
                match s {
                    Step::Probe(verdicts) => {
                        now += 5;
                        let t = Instant::from_secs(now);
                        for (i, p) in probes(&mut m, t).into_iter().enumerate() {
                            let o = if verdicts[i % verdicts.len()] { Outcome::Pass } else { Outcome::Fail(ProbeError::NoReply) };
                            m.handle_result(t, p.id, p.seq, &o);
                        }
                    }
                    Step::Reload(n) => m.reload(targets(&confs[n]), Instant::from_secs(now)),
                    Step::Wait => {
                        now += 25;
                        m.handle_timeout(Instant::from_secs(now));
                    }
                }
                run(&mut m, &mut table)?;
            }
            now += 100;
            m.handle_timeout(Instant::from_secs(now));
            run(&mut m, &mut table)?;
            prop_assert_eq!(table, flat(m.applied()));
        }
    }
}
