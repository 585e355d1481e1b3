//! Cross-scheduler tests: shared helpers, spec vectors, stability pins, properties.

use core::net::{IpAddr, Ipv4Addr};

use crate::{DestId, DestState, Flow};

/// A dest named by up to 4 ASCII bytes (the name is its id).
pub(crate) fn dest(name: &str, weight: i32) -> DestState {
    let id = name_id(name);
    dest_at(
        name,
        weight,
        IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (id & 0xffff))),
        80,
    )
}

pub(crate) fn dest_at(name: &str, weight: i32, addr: IpAddr, port: u16) -> DestState {
    DestState {
        id: DestId(name_id(name)),
        addr,
        port,
        weight,
        last_weight: weight,
        active: 0,
        inactive: 0,
        available: true,
        overloaded: false,
    }
}

fn name_id(name: &str) -> u32 {
    assert!(name.len() <= 4, "test dest names are at most 4 bytes");
    name.bytes().fold(0, |acc, b| (acc << 8) | u32::from(b))
}

fn id_name(id: DestId) -> String {
    let bytes: Vec<u8> = id.0.to_be_bytes().into_iter().filter(|&b| b != 0).collect();
    String::from_utf8(bytes).expect("ascii name")
}

/// Dests given in the order they were added; the list is newest first.
pub(crate) fn dests_newest_first(added: &[(&str, i32)]) -> Vec<DestState> {
    added.iter().rev().map(|&(n, w)| dest(n, w)).collect()
}

/// Names of the picked dests, space separated.
pub(crate) fn names(ds: &[DestState], picks: &[usize]) -> String {
    picks
        .iter()
        .map(|&i| id_name(ds[i].id))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A TCP flow from `src:sport` to 10.0.0.100:80.
pub(crate) fn flow_from(src: IpAddr, sport: u16) -> Flow {
    Flow {
        proto: 6,
        src,
        sport,
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
        dport: 80,
    }
}

/// A TCP flow from a fixed client to `dst:80`.
pub(crate) fn flow_to(dst: IpAddr) -> Flow {
    Flow {
        proto: 6,
        src: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)),
        sport: 40000,
        dst,
        dport: 80,
    }
}

use crate::hash::{fold_addr, hash_32};
use crate::{DestChange, MH_DEFAULT_TABLE_SIZE, SchedFlags, SchedKind, Scheduler};

/// A scheduler initialised with `ds`.
fn sched(kind: SchedKind, flags: SchedFlags, ds: &[DestState]) -> Scheduler {
    let mut s = Scheduler::new(kind, flags, 0x5eed);
    s.init(ds);
    s
}

/// Flows from 64 clients to 8 destination addresses, TCP.
fn flows() -> Vec<Flow> {
    (0..64u32)
        .map(|i| Flow {
            proto: if i % 5 == 4 { 17 } else { 6 },
            src: IpAddr::V4(Ipv4Addr::from(0xC0A8_0100 + i * 7)),
            sport: 1024 + (i as u16) * 31,
            dst: IpAddr::V4(Ipv4Addr::from(0x0A00_0064 + (i % 8))),
            dport: 80,
        })
        .collect()
}

/// Every kind with the flag sets worth distinguishing.
fn variants() -> Vec<(SchedKind, SchedFlags)> {
    let mut v: Vec<_> = SchedKind::ALL
        .iter()
        .map(|&k| (k, SchedFlags::NONE))
        .collect();
    for k in [SchedKind::Sh, SchedKind::Mh] {
        v.push((k, SchedFlags::FALLBACK));
        v.push((k, SchedFlags::PORT));
        v.push((k, SchedFlags::FALLBACK | SchedFlags::PORT));
    }
    v
}

#[test]
fn kind_names_round_trip() {
    for k in SchedKind::ALL {
        assert_eq!(k.to_string().parse::<SchedKind>(), Ok(k));
    }
    assert_eq!(
        SchedKind::ALL.map(SchedKind::name).join(" "),
        "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos"
    );
    assert!("RR".parse::<SchedKind>().is_err());
    assert!("".parse::<SchedKind>().is_err());
    assert!("wlc ".parse::<SchedKind>().is_err());
    assert_eq!(SchedKind::default(), SchedKind::Wlc);
}

#[test]
fn scheduler_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Scheduler>();
    assert_send_sync::<DestState>();
}

#[test]
fn flag_bits() {
    assert_eq!(SchedFlags::FALLBACK.0, 0x8);
    assert_eq!(SchedFlags::PORT.0, 0x10);
    assert_eq!(SchedFlags::SCHED3.0, 0x20);
    let f = SchedFlags::FALLBACK | SchedFlags::PORT;
    assert!(f.contains(SchedFlags::PORT) && f.contains(SchedFlags::FALLBACK));
    assert!(!SchedFlags::PORT.contains(SchedFlags::FALLBACK));
    let s = Scheduler::new(SchedKind::Sh, f, 0);
    assert_eq!((s.kind(), s.flags()), (SchedKind::Sh, f));
}

#[test]
fn mh_table_size_option() {
    assert!(Scheduler::new(SchedKind::Mh, SchedFlags::NONE, 0).max_dests() == Some(4093));
    let s = Scheduler::new(SchedKind::Mh, SchedFlags::NONE, 0)
        .with_mh_table_size(251)
        .expect("251 is a kernel size");
    assert_eq!(s.max_dests(), Some(251));
    assert!(
        Scheduler::new(SchedKind::Mh, SchedFlags::NONE, 0)
            .with_mh_table_size(4096)
            .is_err()
    );
    assert_eq!(
        Scheduler::new(SchedKind::Wlc, SchedFlags::NONE, 0).max_dests(),
        None
    );
    assert_eq!(MH_DEFAULT_TABLE_SIZE, crate::MH_TABLE_SIZES[4]);
}

#[test]
fn every_scheduler_is_none_without_usable_dests() {
    let f = flows()[0];
    for (k, fl) in variants() {
        let mut s = sched(k, fl, &[]);
        assert_eq!(s.schedule(&[], &f, 0), None, "{k} {fl:?} empty");
        let zero = dests_newest_first(&[("A", 0), ("B", 0), ("C", 0)]);
        let mut s = sched(k, fl, &zero);
        for f in flows() {
            assert_eq!(s.schedule(&zero, &f, 0), None, "{k} {fl:?} weight 0");
        }
        let mut over = dests_newest_first(&[("A", 1), ("B", 2), ("C", 3)]);
        for d in &mut over {
            d.overloaded = true;
        }
        let mut s = sched(k, fl, &over);
        for f in flows() {
            assert_eq!(s.schedule(&over, &f, 0), None, "{k} {fl:?} overloaded");
        }
    }
}

#[test]
fn every_scheduler_avoids_weight_zero_and_overloaded() {
    // Only B is usable: A has weight 0, C is overloaded, D both.
    let mut ds = dests_newest_first(&[("A", 0), ("B", 2), ("C", 5), ("D", 0)]);
    ds[1].overloaded = true; // C
    ds[0].overloaded = true; // D
    let b = 2;
    for (k, fl) in variants() {
        let mut s = sched(k, fl, &ds);
        for (n, f) in flows().iter().enumerate() {
            let got = s.schedule(&ds, f, n as u64);
            let hashes = matches!(k, SchedKind::Sh | SchedKind::Mh | SchedKind::Dh);
            if hashes && !fl.contains(SchedFlags::FALLBACK) {
                assert!(got.is_none() || got == Some(b), "{k} {fl:?}: {got:?}");
            } else {
                assert_eq!(got, Some(b), "{k} {fl:?}");
            }
        }
    }
}

#[test]
fn ties_favour_the_newest_dest() {
    let ds = dests_newest_first(&[("A", 3), ("B", 3), ("C", 3)]);
    for k in [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Lblc,
        SchedKind::Lblcr,
    ] {
        let mut s = sched(k, SchedFlags::NONE, &ds);
        assert_eq!(s.schedule(&ds, &flows()[0], 0), Some(0), "{k}");
    }
}

#[test]
fn wrr_add_and_delete_restart_from_head_with_adjusted_cw() {
    let f = flows()[0];
    let mut ds = dests_newest_first(&[("A", 4), ("B", 2)]);
    let mut s = sched(SchedKind::Wrr, SchedFlags::NONE, &ds);
    let picks = |s: &mut Scheduler, ds: &[DestState], n: usize| {
        let p: Vec<usize> = (0..n)
            .map(|_| s.schedule(ds, &f, 0).expect("pick"))
            .collect();
        names(ds, &p)
    };
    assert_eq!(picks(&mut s, &ds, 3), "A B A"); // ends with cw = 1 on A
    ds.insert(0, dest("C", 1));
    s.update(&ds, DestChange::Added { index: 0 });
    // gcd 1, mw 4, cw stays 1, cursor at head: C B A, then a new lap from cw = 4.
    assert_eq!(picks(&mut s, &ds, 8), "C B A A A B A C");
    let gone = ds.remove(1); // B, while the cursor is on C
    s.update(
        &ds,
        DestChange::Removed {
            index: 1,
            id: gone.id,
        },
    );
    // gcd 1, mw 4, cw 1 kept; from head: C A, then cw 4: A A A.
    assert_eq!(picks(&mut s, &ds, 5), "C A A A A");
}

#[test]
fn update_keeps_tables_in_step_with_the_list() {
    // Build a list through updates and compare with a fresh init, for the table
    // schedulers (whose state is a pure function of the list).
    let mut ds: Vec<DestState> = Vec::new();
    let mut scheds: Vec<_> = [SchedKind::Sh, SchedKind::Dh, SchedKind::Mh]
        .into_iter()
        .map(|k| sched(k, SchedFlags::FALLBACK, &ds))
        .collect();
    for (i, w) in [3, 1, 0, 2, 5].into_iter().enumerate() {
        ds.insert(0, dest(&format!("d{i}"), w));
        for s in &mut scheds {
            s.update(&ds, DestChange::Added { index: 0 });
        }
    }
    ds[1].weight = 4;
    ds[1].last_weight = 4;
    for s in &mut scheds {
        s.update(&ds, DestChange::Edited { index: 1 });
    }
    let gone = ds.remove(2);
    for s in &mut scheds {
        s.update(
            &ds,
            DestChange::Removed {
                index: 2,
                id: gone.id,
            },
        );
    }
    for s in &mut scheds {
        let mut fresh = sched(s.kind(), s.flags(), &ds);
        for f in flows() {
            assert_eq!(
                s.schedule(&ds, &f, 0),
                fresh.schedule(&ds, &f, 0),
                "{}",
                s.kind()
            );
        }
    }
}

#[test]
fn stale_list_never_panics() {
    // A caller that shrinks the list without telling the scheduler gets answers
    // inside the new list (or none), never a panic.
    let ds = dests_newest_first(&[("A", 1), ("B", 2), ("C", 3), ("D", 4)]);
    for (k, fl) in variants() {
        let mut s = sched(k, fl, &ds);
        for f in flows().iter().take(8) {
            s.schedule(&ds, f, 0);
        }
        let short = &ds[..1];
        for f in flows() {
            if let Some(i) = s.schedule(short, &f, 0) {
                assert!(i < short.len(), "{k}");
            }
        }
    }
}

#[test]
fn lblc_timer_only_for_locality_schedulers() {
    for k in SchedKind::ALL {
        let ds = dests_newest_first(&[("A", 1)]);
        let mut s = sched(k, SchedFlags::NONE, &ds);
        assert_eq!(s.poll_timeout(), None);
        s.start_timer(1000);
        let armed = matches!(k, SchedKind::Lblc | SchedKind::Lblcr);
        assert_eq!(s.poll_timeout(), armed.then_some(61_000), "{k}");
        s.schedule(&ds, &flows()[0], 2000);
        assert_eq!(s.lblc_entries(), usize::from(armed));
        s.set_lblc_expiration_ms(10);
        // 30th run is the full pass; runs 1..=29 only count.
        for n in 1..=30u64 {
            s.handle_timeout(&ds, 1000 + n * 60_000);
        }
        assert_eq!(s.lblc_entries(), 0, "{k}");
    }
}

/// Picks of every scheduler variant over the 64 fixed flows against a fixed
/// 5-dest list, adding one active connection to the chosen dest after each pick.
/// Digits are list indices, `-` is no destination.
fn stability_rows() -> Vec<(String, String)> {
    let base: Vec<DestState> = [(2, 80), (3, 80), (1, 8080), (4, 80), (2, 443)]
        .into_iter()
        .enumerate()
        .map(|(i, (w, port))| {
            let mut d = dest_at(
                &format!("s{i}"),
                w,
                IpAddr::V4(Ipv4Addr::new(10, 1, 0, 10 + i as u8)),
                port,
            );
            d.inactive = (i as u32) * 3;
            if i == 2 {
                // Quiesced: sh/mh without fallback refuse its clients.
                d.weight = 0;
            }
            d
        })
        .collect();
    variants()
        .into_iter()
        .map(|(k, fl)| {
            let mut ds = base.clone();
            let mut s = sched(k, fl, &ds);
            let picks: String = flows()
                .iter()
                .enumerate()
                .map(|(n, f)| match s.schedule(&ds, f, n as u64 * 1000) {
                    Some(i) => {
                        ds[i].active += 1;
                        char::from(b'0' + i as u8)
                    }
                    None => '-',
                })
                .collect();
            (format!("{k}/{:#x}", fl.0), picks)
        })
        .collect()
}

#[test]
fn stability_pinned_picks() {
    // Regenerate with `cargo test -p rvs-sched print_stability -- --ignored
    // --nocapture` only when a change of decisions is intended and understood.
    const PINNED: &[(&str, &str)] = &[
        (
            "rr/0x0",
            "0134013401340134013401340134013401340134013401340134013401340134",
        ),
        (
            "wrr/0x0",
            "3130134013431301340134313013401343130134013431301340134313013401",
        ),
        (
            "lc/0x0",
            "0134013401340134013401340134013401340134013401340134013401340134",
        ),
        (
            "wlc/0x0",
            "0134310341301343103413013431034130134310341301343103413013431034",
        ),
        (
            "lblc/0x0",
            "0134310301343103013431030134310301343103013431030134310301343103",
        ),
        (
            "lblcr/0x0",
            "0134310301343103013431030134310301343103013431030134310301343103",
        ),
        (
            "dh/0x0",
            "30-4-0-430-4-0-430-4-0-430-4-0-430-4-0-430-4-0-430-4-0-430-4-0-4",
        ),
        (
            "sh/0x0",
            "1333001333400--344411-3441111334111333001333000-334401--44411133",
        ),
        (
            "sed/0x0",
            "3103413013431034130134310341301343103413013431034130134310341301",
        ),
        (
            "nq/0x0",
            "0134313013431034130134310341301343103413013431034130134310341301",
        ),
        (
            "fo/0x0",
            "3333333333333333333333333333333333333333333333333333333333333333",
        ),
        (
            "ovf/0x0",
            "333331111000444-------------------------------------------------",
        ),
        (
            "mh/0x0",
            "011101110-3433103311333-10041140300310011443--310434434331341041",
        ),
        (
            "twos/0x0",
            "1033401331310133401313014331440011434330031431343030343111430114",
        ),
        (
            "sh/0x8",
            "1333001333400333444114344111133411133300133300033344013444411133",
        ),
        (
            "sh/0x10",
            "00331144331144-00331100331144330033-10033114433103--003311443311",
        ),
        (
            "sh/0x18",
            "0033114433114440033110033114433003341003311443310343003311443311",
        ),
        (
            "mh/0x8",
            "0111011103343310331133311004114030031001144334310434434331341041",
        ),
        (
            "mh/0x10",
            "44311144313301430-13334303-10313314341--03313040-3334444--3-3340",
        ),
        (
            "mh/0x18",
            "4431114431330143001333430301031331434131033130401333444434303340",
        ),
    ];
    let rows = stability_rows();
    assert_eq!(rows.len(), PINNED.len(), "one pinned row per variant");
    for ((name, picks), (pname, ppicks)) in rows.iter().zip(PINNED) {
        assert_eq!(name, pname);
        assert_eq!(picks, ppicks, "{name} moved flows");
    }
}

#[test]
#[ignore = "prints the stability table"]
fn print_stability() {
    for (name, picks) in stability_rows() {
        println!("        (\"{name}\", \"{picks}\"),");
    }
}

/// Literal transcription of the kernel's `ip_vs_wrr_schedule`, without the
/// pass-skipping shortcut, as a reference for the property test.
#[derive(Clone, Debug)]
struct WrrRef {
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

impl WrrRef {
    fn recompute(&mut self, ds: &[DestState]) {
        let mut g = 0;
        for d in ds {
            let w = i64::from(d.weight);
            if w > 0 {
                g = if g > 0 { crate::hash::gcd(w, g) } else { w };
            }
        }
        self.di = if g > 0 { g } else { 1 };
        let max = ds.iter().map(|d| i64::from(d.weight)).fold(0, i64::max);
        self.mw = max - (self.di - 1);
        self.cl = None;
    }

    fn new(ds: &[DestState]) -> Self {
        let mut r = Self {
            cl: None,
            cw: 0,
            mw: 0,
            di: 1,
        };
        r.recompute(ds);
        r.cw = r.mw;
        r
    }

    fn changed(&mut self, ds: &[DestState]) {
        self.recompute(ds);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, ds: &[DestState]) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let last = self.cl;
        let mut pos = self.cl;
        let (mut stop, mut last_pass, mut restarted) = (None, false, false);
        loop {
            let mut i = pos.map_or(0, |p| p + 1);
            while i < ds.len() {
                if !ds[i].overloaded && i64::from(ds[i].weight) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
                i += 1;
            }
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Case count: 64 by default (two shared cores), `PROPTEST_CASES` overrides.
    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64);
        ProptestConfig::with_cases(cases)
    }

    /// A list of 1..=12 dests: (weight, overloaded, active, inactive).
    fn dest_list() -> impl Strategy<Value = Vec<DestState>> {
        prop::collection::vec(
            (0i32..6, prop::bool::weighted(0.2), 0u32..8, 0u32..8),
            1..12,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (w, over, active, inactive))| {
                    let mut d = dest_at(
                        &format!("p{i}"),
                        w,
                        IpAddr::V4(Ipv4Addr::new(172, 16, (i / 200) as u8, (i % 200) as u8 + 1)),
                        80,
                    );
                    d.last_weight = if w == 0 { (i as i32 % 3) + 1 } else { w };
                    d.overloaded = over;
                    d.active = active;
                    d.inactive = inactive;
                    d
                })
                .collect()
        })
    }

    fn flow() -> impl Strategy<Value = Flow> {
        (
            any::<u32>(),
            any::<u16>(),
            any::<u32>(),
            prop::sample::select(vec![1u8, 6, 17, 132]),
        )
            .prop_map(|(s, sport, d, proto)| Flow {
                proto,
                src: IpAddr::V4(Ipv4Addr::from(s)),
                sport,
                dst: IpAddr::V4(Ipv4Addr::from(d % 64)),
                dport: 80,
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn weight_zero_never_chosen(ds in dest_list(), fs in prop::collection::vec(flow(), 1..40)) {
            for (k, fl) in variants() {
                let mut s = sched(k, fl, &ds);
                for (n, f) in fs.iter().enumerate() {
                    if let Some(i) = s.schedule(&ds, f, n as u64) {
                        prop_assert!(ds[i].weight > 0, "{k} {fl:?} chose weight 0");
                        // lblc/lblcr keep a cached dest without looking at OVERLOAD.
                        if !matches!(k, SchedKind::Lblc | SchedKind::Lblcr) {
                            prop_assert!(!ds[i].overloaded, "{k} {fl:?} chose overloaded");
                        }
                    }
                }
            }
        }

        #[test]
        fn wrr_is_exact_per_period(weights in prop::collection::vec(0i32..9, 1..8)) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let ds: Vec<_> = weights
                .iter()
                .enumerate()
                .map(|(i, &w)| dest(&format!("w{i}"), w))
                .collect();
            let g = weights.iter().filter(|&&w| w > 0).fold(0i64, |g, &w| {
                if g == 0 { i64::from(w) } else { crate::hash::gcd(g, i64::from(w)) }
            });
            let period: i64 = weights.iter().map(|&w| i64::from(w) / g).sum();
            let mut s = sched(SchedKind::Wrr, SchedFlags::NONE, &ds);
            for _ in 0..2 {
                let mut counts = vec![0i64; ds.len()];
                for _ in 0..period {
                    counts[s.schedule(&ds, &flows()[0], 0).expect("a positive weight")] += 1;
                }
                let expect: Vec<i64> = weights.iter().map(|&w| i64::from(w) / g).collect();
                prop_assert_eq!(&counts, &expect);
            }
        }

        #[test]
        fn wrr_matches_kernel_transcription(
            ds0 in dest_list(),
            ops in prop::collection::vec((0u8..4, any::<prop::sample::Index>(), 0i32..6), 1..60),
        ) {
            let mut ds = ds0;
            let mut fast = sched(SchedKind::Wrr, SchedFlags::NONE, &ds);
            let mut slow = WrrRef::new(&ds);
            for (op, idx, w) in ops {
                let i = idx.index(ds.len());
                match op {
                    0 => {
                        ds[i].overloaded = !ds[i].overloaded;
                    }
                    1 => {
                        ds[i].weight = w;
                        fast.update(&ds, DestChange::Edited { index: i });
                        slow.changed(&ds);
                    }
                    _ => {
                        prop_assert_eq!(fast.schedule(&ds, &flows()[0], 0), slow.schedule(&ds));
                    }
                }
            }
        }

        #[test]
        fn mh_table_share_follows_weights(weights in prop::collection::vec(1i32..11, 1..10)) {
            let ds: Vec<_> = weights
                .iter()
                .enumerate()
                .map(|(i, &w)| dest_at(&format!("m{i}"), w, IpAddr::V4(Ipv4Addr::new(10, 9, 0, i as u8 + 1)), 80))
                .collect();
            let s = sched(SchedKind::Mh, SchedFlags::NONE, &ds);
            let table = s.mh_table().expect("mh");
            let g = weights.iter().fold(0i64, |g, &w| {
                if g == 0 { i64::from(w) } else { crate::hash::gcd(g, i64::from(w)) }
            });
            // Weights < 64: no shift, turns = w / g.
            let turns: Vec<i64> = weights.iter().map(|&w| i64::from(w) / g).collect();
            let total: i64 = turns.iter().sum();
            let m = i64::from(MH_DEFAULT_TABLE_SIZE);
            for (i, &t) in turns.iter().enumerate() {
                let count = table.iter().filter(|&&x| x as usize == i).count() as i64;
                // Full rounds give exactly t slots each; the last round at most t.
                let ideal = m * t;
                prop_assert!((count * total - ideal).abs() <= t * total,
                    "dest {i}: {count} slots, ideal {}", ideal as f64 / total as f64);
            }
        }

        #[test]
        fn mh_removal_disrupts_little(n in 5usize..24, removed in any::<prop::sample::Index>(), seed in any::<u16>()) {
            let mut ds: Vec<_> = (0..n)
                .map(|i| dest_at(&format!("r{i}"), 1, IpAddr::V4(Ipv4Addr::new(10, 20, (seed >> 8) as u8, (seed as u8).wrapping_add(i as u8 * 3))), 8000 + i as u16))
                .collect();
            let mut s = sched(SchedKind::Mh, SchedFlags::NONE, &ds);
            let before: Vec<DestId> = s.mh_table().expect("mh").iter().map(|&x| ds[x as usize].id).collect();
            let r = removed.index(n);
            let gone = ds.remove(r);
            s.update(&ds, DestChange::Removed { index: r, id: gone.id });
            let after: Vec<DestId> = s.mh_table().expect("mh").iter().map(|&x| ds[x as usize].id).collect();
            let m = before.len() as f64;
            let on_removed = before.iter().filter(|&&id| id == gone.id).count() as f64;
            let moved_total = before.iter().zip(&after).filter(|(b, a)| b != a).count() as f64;
            let moved_others = moved_total - on_removed;
            // Every key of the removed dest moves; the others mostly stay.
            prop_assert!(after.iter().all(|&id| id != gone.id));
            prop_assert!((on_removed / m - 1.0 / n as f64).abs() < 0.02);
            // Two dests whose H2 collide (mod M - 1) share a skip, so one chases the
            // other around the same cycle and a removal cascades further: a property
            // of the kernel's hashing (seen up to 15 % with 6 dests), bounded loosely.
            let skips: std::collections::HashSet<u32> = ds
                .iter()
                .chain([&gone])
                .map(|d| {
                    let v = u32::from(d.port).wrapping_add(fold_addr(&d.addr));
                    crate::hsiphash_u32(v, 2_654_446_892, 2_654_446_892) % 4092
                })
                .collect();
            // Otherwise measured: mean 0.6 % (5 dests) to 1.7 % (23 dests) of the table,
            // worst seen about 5 %. A modulo hash would move about (n - 1) / n of it.
            let bound = if skips.len() == n { 0.08 } else { 0.25 };
            prop_assert!(moved_others / m <= bound, "moved others {}", moved_others / m);
            prop_assert!(moved_total / m <= 1.0 / n as f64 + bound);
        }

        #[test]
        fn sh_without_fallback_is_none_iff_bucket_dest_unusable(
            ds in dest_list(),
            fs in prop::collection::vec(flow(), 1..40),
            port in any::<bool>(),
        ) {
            let flags = if port { SchedFlags::PORT } else { SchedFlags::NONE };
            let mut s = sched(SchedKind::Sh, flags, &ds);
            let mut fb = sched(SchedKind::Sh, flags | SchedFlags::FALLBACK, &ds);
            // Independent fill: each dest repeated max(w, 1) times, cycled.
            let expanded: Vec<usize> = (0..ds.len())
                .flat_map(|i| std::iter::repeat_n(i, ds[i].weight.max(1) as usize))
                .collect();
            let any_usable = ds.iter().any(|d| d.weight > 0 && !d.overloaded);
            for f in &fs {
                let p = if port && matches!(f.proto, 6 | 17 | 132) { u32::from(f.sport) } else { 0 };
                let b = hash_32(p.wrapping_add(fold_addr(&f.src)), 8) as usize;
                let owner = expanded[b % expanded.len()];
                let usable = ds[owner].weight > 0 && !ds[owner].overloaded;
                prop_assert_eq!(s.schedule(&ds, f, 0), usable.then_some(owner));
                // With fallback and every dest in the table, something usable is found
                // iff something usable exists, and the owner is kept when usable.
                let got = fb.schedule(&ds, f, 0);
                prop_assert_eq!(got.is_some(), any_usable);
                if usable {
                    prop_assert_eq!(got, Some(owner));
                }
            }
        }
    }
}
