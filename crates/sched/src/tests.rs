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
