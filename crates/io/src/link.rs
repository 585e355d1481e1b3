//! Interfaces and their addresses over rtnetlink: what `ip link` and `ip addr` do, for the
//! few operations the real-server helper needs.
//!
//! - links: [`state`] (index and up/down), [`set_up`], [`add`] (a device of a given kind,
//!   such as `ipip`), [`add_veth`], [`delete`];
//! - addresses: [`addrs`] (the addresses of one interface), [`addr_add`], [`addr_del`].
//!
//! Requests are `RTM_*LINK` and `RTM_*ADDR` messages on a `NETLINK_ROUTE` socket of the
//! calling thread's network namespace; nothing shells out to `ip`. Kernel errors keep their
//! errno (`EEXIST`, `ENODEV`, `EADDRNOTAVAIL`, `EOPNOTSUPP` for an unknown link kind...) so
//! callers can tell "already there" from a real failure.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::netlink::{NLM_F_CREATE, NLM_F_DUMP, Netlink, attrs, push_attr, rd_u32};
use crate::{invalid, os_err};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const NLM_F_EXCL: u16 = 0x200;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const IFF_UP: u32 = 0x1;
/// `struct ifinfomsg` length.
const IFINFOMSG_LEN: usize = 16;
/// `struct ifaddrmsg` length.
const IFADDRMSG_LEN: usize = 8;

/// What [`state`] reports about an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index.
    pub index: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
}

/// `struct ifinfomsg`: family, type, index, flags, change mask.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&change.to_ne_bytes());
    b
}

fn check_name(name: &str) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) || b.contains(&b'/') {
        return Err(invalid(format!("invalid interface name {name:?}")));
    }
    Ok(())
}

fn name_attr(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

/// Index and up/down state of interface `name`, or `None` when there is no such interface.
///
/// # Errors
///
/// `InvalidInput` for a malformed name; a failed netlink exchange.
pub fn state(name: &str) -> io::Result<Option<LinkState>> {
    check_name(name)?;
    let mut body = ifinfomsg(0, 0, 0);
    push_attr(&mut body, IFLA_IFNAME, &name_attr(name));
    let mut found = None;
    let r = Netlink::open()?.request(RTM_GETLINK, 0, &body, "RTM_GETLINK", |ty, p| {
        if ty == RTM_NEWLINK
            && found.is_none()
            && p.len() >= IFINFOMSG_LEN
            && let (Some(index), Some(flags)) = (rd_u32(p, 4), rd_u32(p, 8))
        {
            found = Some(LinkState {
                index,
                up: flags & IFF_UP != 0,
            });
        }
    });
    match r {
        Ok(()) => Ok(found),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(os_err("RTM_GETLINK", name, e)),
    }
}

/// The errno of an error of this crate (through its [`crate::OsError`] wrapping).
pub fn errno(e: &io::Error) -> Option<i32> {
    if let Some(n) = e.raw_os_error() {
        return Some(n);
    }
    let inner = e.get_ref()?.downcast_ref::<crate::OsError>()?;
    errno(&inner.cause)
}

/// Index of `name`, or `NotFound`.
fn index_of(name: &str) -> io::Result<u32> {
    state(name)?.map(|s| s.index).ok_or_else(|| {
        os_err(
            "RTM_GETLINK",
            name,
            io::Error::from_raw_os_error(libc::ENODEV),
        )
    })
}

/// Bring interface `name` up or down (`ip link set NAME up|down`).
///
/// # Errors
///
/// `NotFound` (`ENODEV`) when there is no such interface; the kernel's error otherwise.
pub fn set_up(name: &str, up: bool) -> io::Result<()> {
    let index = index_of(name)?;
    let body = ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP);
    Netlink::open()?
        .request(RTM_NEWLINK, 0, &body, "RTM_NEWLINK", |_, _| {})
        .map_err(|e| os_err("RTM_NEWLINK(set up/down)", name, e))
}

/// Create interface `name` of link kind `kind` with no other attribute
/// (`ip link add NAME type KIND`). For `ipip` this loads the module if it can, which also
/// creates the namespace's fallback device `tunl0`.
///
/// # Errors
///
/// `EEXIST` when the name is taken; `EOPNOTSUPP` when the kernel knows no such kind (the
/// module is missing); the kernel's error otherwise.
pub fn add(name: &str, kind: &str) -> io::Result<()> {
    check_name(name)?;
    let mut info = Vec::new();
    push_attr(&mut info, IFLA_INFO_KIND, kind.as_bytes());
    create(name, &info, &format!("{name} type {kind}"))
}

/// Create a veth pair `a` - `b` in the calling thread's namespace, both down
/// (`ip link add A type veth peer name B`).
///
/// # Errors
///
/// `EEXIST` when a name is taken; the kernel's error otherwise.
pub fn add_veth(a: &str, b: &str) -> io::Result<()> {
    check_name(a)?;
    check_name(b)?;
    // IFLA_INFO_DATA { VETH_INFO_PEER { struct ifinfomsg, IFLA_IFNAME } }
    let mut peer = ifinfomsg(0, 0, 0);
    push_attr(&mut peer, IFLA_IFNAME, &name_attr(b));
    let mut data = Vec::new();
    push_attr(&mut data, VETH_INFO_PEER, &peer);
    let mut info = Vec::new();
    push_attr(&mut info, IFLA_INFO_KIND, b"veth");
    push_attr(&mut info, IFLA_INFO_DATA, &data);
    create(a, &info, &format!("{a} type veth peer {b}"))
}

/// `RTM_NEWLINK` creating `name` with the `IFLA_LINKINFO` attributes `info`; `what` names
/// the request in errors.
fn create(name: &str, info: &[u8], what: &str) -> io::Result<()> {
    let mut body = ifinfomsg(0, 0, 0);
    push_attr(&mut body, IFLA_IFNAME, &name_attr(name));
    push_attr(&mut body, IFLA_LINKINFO, info);
    Netlink::open()?
        .request(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
            "RTM_NEWLINK(create)",
            |_, _| {},
        )
        .map_err(|e| os_err("RTM_NEWLINK(create)", what, e))
}

/// Delete interface `name` (`ip link del NAME`).
///
/// # Errors
///
/// `ENODEV` when there is no such interface; `EOPNOTSUPP` for a device that cannot be
/// deleted this way; the kernel's error otherwise.
pub fn delete(name: &str) -> io::Result<()> {
    let index = index_of(name)?;
    let body = ifinfomsg(index, 0, 0);
    Netlink::open()?
        .request(RTM_DELLINK, 0, &body, "RTM_DELLINK", |_, _| {})
        .map_err(|e| os_err("RTM_DELLINK", name, e))
}

/// `struct ifaddrmsg`: family, prefix length, flags, scope, index.
fn ifaddrmsg(family: u8, prefix: u8, flags: u8, index: u32) -> Vec<u8> {
    let mut b = vec![family, prefix, flags, 0];
    b.extend_from_slice(&index.to_ne_bytes());
    b
}

fn ip_parts(ip: IpAddr) -> (u8, Vec<u8>, u8) {
    match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec(), 32),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec(), 128),
    }
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

/// The addresses (address, prefix length) of interface `name`, IPv4 and IPv6.
///
/// # Errors
///
/// `ENODEV` when there is no such interface; a failed netlink exchange.
pub fn addrs(name: &str) -> io::Result<Vec<(IpAddr, u8)>> {
    let index = index_of(name)?;
    let body = ifaddrmsg(libc::AF_UNSPEC as u8, 0, 0, 0);
    let mut out = Vec::new();
    Netlink::open()?
        .request(RTM_GETADDR, NLM_F_DUMP, &body, "RTM_GETADDR", |ty, p| {
            if ty != RTM_NEWADDR || p.len() < IFADDRMSG_LEN || rd_u32(p, 4) != Some(index) {
                return;
            }
            let prefix = p[1];
            let (mut local, mut address) = (None, None);
            for (t, v) in attrs(&p[IFADDRMSG_LEN..]) {
                match t {
                    IFA_LOCAL => local = ip_from(v),
                    IFA_ADDRESS => address = ip_from(v),
                    _ => {}
                }
            }
            // IFA_LOCAL is the interface's own address (IPv4); IFA_ADDRESS is the peer on
            // point-to-point links, and the only one given for IPv6.
            if let Some(a) = local.or(address) {
                out.push((a, prefix));
            }
        })
        .map_err(|e| os_err("RTM_GETADDR", name, e))?;
    Ok(out)
}

/// Add `ip/prefix` to interface `name` with global scope (`ip addr add IP/PREFIX dev NAME`;
/// IPv6 addresses skip duplicate address detection, as `nodad`).
///
/// # Errors
///
/// `InvalidInput` for a prefix longer than the address; `EEXIST` when the address is
/// already there; `ENODEV` when there is no such interface.
pub fn addr_add(name: &str, ip: IpAddr, prefix: u8) -> io::Result<()> {
    addr_change(name, ip, prefix, true)
}

/// Remove `ip/prefix` from interface `name` (`ip addr del IP/PREFIX dev NAME`).
///
/// # Errors
///
/// `EADDRNOTAVAIL` when the address is not there; `ENODEV` when there is no such
/// interface.
pub fn addr_del(name: &str, ip: IpAddr, prefix: u8) -> io::Result<()> {
    addr_change(name, ip, prefix, false)
}

fn addr_change(name: &str, ip: IpAddr, prefix: u8, add: bool) -> io::Result<()> {
    let (family, bytes, max) = ip_parts(ip);
    if prefix > max {
        return Err(invalid(format!("prefix length {prefix} too long for {ip}")));
    }
    let index = index_of(name)?;
    let flags = if ip.is_ipv6() { IFA_F_NODAD } else { 0 };
    let mut body = ifaddrmsg(family, prefix, flags, index);
    if ip.is_ipv4() {
        push_attr(&mut body, IFA_LOCAL, &bytes);
    }
    push_attr(&mut body, IFA_ADDRESS, &bytes);
    let target = format!("{ip}/{prefix} dev {name}");
    if add {
        Netlink::open()?
            .request(
                RTM_NEWADDR,
                NLM_F_CREATE | NLM_F_EXCL,
                &body,
                "RTM_NEWADDR",
                |_, _| {},
            )
            .map_err(|e| os_err("RTM_NEWADDR", target, e))
    } else {
        Netlink::open()?
            .request(RTM_DELADDR, 0, &body, "RTM_DELADDR", |_, _| {})
            .map_err(|e| os_err("RTM_DELADDR", target, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{NetNs, skip_reason};

    #[test]
    fn errno_sees_through_os_error() {
        let e = os_err("x", "y", io::Error::from_raw_os_error(libc::EEXIST));
        assert_eq!(errno(&e), Some(libc::EEXIST));
        let e = os_err("outer", "z", e);
        assert_eq!(errno(&e), Some(libc::EEXIST));
        assert_eq!(errno(&io::Error::other("plain")), None);
    }

    #[test]
    fn links_and_addresses_in_a_namespace() {
        if let Some(why) = skip_reason() {
            eprintln!("skipping: {why}");
            return;
        }
        let ns = NetNs::new("link").expect("namespace");
        ns.run(|| {
            assert_eq!(state("rvs-nope").expect("query"), None);
            let lo = state("lo").expect("query").expect("lo exists");
            assert!(lo.up, "lo was brought up by NetNs::new");

            let vip: IpAddr = "198.18.0.100".parse().expect("ip");
            let vip6: IpAddr = "2001:db8::100".parse().expect("ip");
            addr_add("lo", vip, 32).expect("add v4");
            addr_add("lo", vip6, 128).expect("add v6");
            let e = addr_add("lo", vip, 32).expect_err("duplicate");
            assert_eq!(errno(&e), Some(libc::EEXIST), "{e}");
            let a = addrs("lo").expect("list");
            assert!(a.contains(&(vip, 32)), "{a:?}");
            assert!(a.contains(&(vip6, 128)), "{a:?}");
            addr_del("lo", vip, 32).expect("del v4");
            addr_del("lo", vip6, 128).expect("del v6");
            let a = addrs("lo").expect("list");
            assert!(
                !a.contains(&(vip, 32)) && !a.contains(&(vip6, 128)),
                "{a:?}"
            );
            let e = addr_del("lo", vip, 32).expect_err("already gone");
            assert_eq!(errno(&e), Some(libc::EADDRNOTAVAIL), "{e}");

            // A dummy device (or, without that module, a TUN device) goes up, down and away.
            let name = "rvs-l0";
            let _keep = match add(name, "dummy") {
                Ok(()) => None,
                Err(_) => {
                    let t = crate::tun::TunDevice::open(name, true).expect("tun");
                    t.set_persist(true).expect("persist");
                    Some(t)
                }
            };
            assert!(!state(name).expect("query").expect("exists").up);
            set_up(name, true).expect("up");
            assert!(state(name).expect("query").expect("exists").up);
            set_up(name, false).expect("down");
            delete(name).expect("delete");
            assert_eq!(state(name).expect("query"), None);
            let e = delete(name).expect_err("gone");
            assert_eq!(errno(&e), Some(libc::ENODEV), "{e}");
        })
        .expect("run in namespace");
    }
}
