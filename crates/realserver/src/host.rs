//! Everything `setup` and `undo` read or change on the host, behind one trait so that the
//! planning and undo logic runs against an in-memory host in unit tests.
//!
//! The real implementation, [`Linux`], reads and writes sysctls under `/proc/sys` (which
//! shows the network namespace of the calling process) and uses `rvs_io::link` (rtnetlink)
//! and `rvs_io::tun` for interfaces and addresses.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A sysctl, by its path under `/proc/sys` (`net/ipv4/conf/all/arp_ignore`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sysctl(pub(crate) String);

impl Sysctl {
    /// `net.ipv4.conf.<dev>.<key>`.
    pub(crate) fn ipv4_conf(dev: &str, key: &str) -> Self {
        Self(format!("net/ipv4/conf/{dev}/{key}"))
    }

    /// The interface part of a `net/ipv4/conf/<dev>/<key>` path.
    pub(crate) fn conf_dev(&self) -> Option<&str> {
        let mut parts = self.0.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("net"), Some(_), Some("conf"), Some(dev)) => Some(dev),
            _ => None,
        }
    }
}

/// The name `sysctl(8)` uses: components joined by `.`, a `.` inside a component (as in
/// the VLAN interface `eth0.100`) written as `/`.
impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dotted: Vec<String> = self.0.split('/').map(|c| c.replace('.', "/")).collect();
        f.write_str(&dotted.join("."))
    }
}

/// Whether `name` can be an interface name: 1 to 15 bytes, no `/`, no whitespace or
/// control character, not `.` or `..`.
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// The errno of an error, looking through `rvs_io`'s wrapping.
pub(crate) fn errno(e: &io::Error) -> Option<i32> {
    rvs_io::link::errno(e)
}

/// An `io::Error` for an errno (used by the in-memory host and for clarity in matches).
#[cfg(test)]
pub(crate) fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// What `setup`, `undo` and `status` need from the host.
pub(crate) trait Host {
    /// The current value of a sysctl, trimmed.
    fn sysctl_read(&self, key: &Sysctl) -> io::Result<String>;
    /// Set a sysctl.
    fn sysctl_write(&mut self, key: &Sysctl, value: &str) -> io::Result<()>;
    /// The interfaces that have an IPv4 configuration (`/proc/sys/net/ipv4/conf/*` less
    /// `all` and `default`).
    fn ipv4_conf_devices(&self) -> io::Result<Vec<String>>;
    /// `Some(up)` when the interface exists.
    fn link_up(&self, name: &str) -> io::Result<Option<bool>>;
    /// Bring an interface up or down.
    fn set_up(&mut self, name: &str, up: bool) -> io::Result<()>;
    /// Create a persistent TUN device (`IFF_TUN | IFF_NO_PI`), left down.
    fn create_tun(&mut self, name: &str) -> io::Result<()>;
    /// Create an `ipip` device (loads the module when it can).
    fn create_ipip(&mut self, name: &str) -> io::Result<()>;
    /// Delete an interface.
    fn delete_link(&mut self, name: &str) -> io::Result<()>;
    /// Addresses of an interface.
    fn addrs(&self, dev: &str) -> io::Result<Vec<(IpAddr, u8)>>;
    /// Add an address.
    fn addr_add(&mut self, dev: &str, ip: IpAddr, prefix: u8) -> io::Result<()>;
    /// Remove an address.
    fn addr_del(&mut self, dev: &str, ip: IpAddr, prefix: u8) -> io::Result<()>;
    /// Whether the kernel can decapsulate IP-in-IP itself: `tunl0` exists, or the `ipip`
    /// module is loaded, built in or installed.
    fn kernel_ipip_available(&self) -> bool;
}

/// The running kernel, in the calling process's network namespace.
#[derive(Debug)]
pub(crate) struct Linux {
    proc_sys: PathBuf,
}

impl Linux {
    /// The host, with sysctls under `/proc/sys`.
    pub(crate) fn new() -> Self {
        Self {
            proc_sys: PathBuf::from("/proc/sys"),
        }
    }

    fn path(&self, key: &Sysctl) -> PathBuf {
        self.proc_sys.join(&key.0)
    }
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl Host for Linux {
    fn sysctl_read(&self, key: &Sysctl) -> io::Result<String> {
        let p = self.path(key);
        std::fs::read_to_string(&p)
            .map(|s| s.trim().to_owned())
            .map_err(|e| with_path(e, "reading", &p))
    }

    fn sysctl_write(&mut self, key: &Sysctl, value: &str) -> io::Result<()> {
        let p = self.path(key);
        std::fs::write(&p, format!("{value}\n")).map_err(|e| with_path(e, "writing", &p))
    }

    fn ipv4_conf_devices(&self) -> io::Result<Vec<String>> {
        let dir = self.proc_sys.join("net/ipv4/conf");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| with_path(e, "listing", &dir))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name != "all" && name != "default" {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn link_up(&self, name: &str) -> io::Result<Option<bool>> {
        Ok(rvs_io::link::state(name)?.map(|s| s.up))
    }

    fn set_up(&mut self, name: &str, up: bool) -> io::Result<()> {
        rvs_io::link::set_up(name, up)
    }

    fn create_tun(&mut self, name: &str) -> io::Result<()> {
        let t = rvs_io::tun::TunDevice::open(name, true)?;
        if t.name() != name {
            // TUNSETIFF attached to a device of another name: should not happen for a
            // name without '%', but never leave a device we did not mean to make.
            let _ = t.set_persist(false);
            return Err(io::Error::other(format!(
                "asked for TUN device {name}, the kernel made {}",
                t.name()
            )));
        }
        t.set_persist(true)
    }

    fn create_ipip(&mut self, name: &str) -> io::Result<()> {
        rvs_io::link::add(name, "ipip")
    }

    fn delete_link(&mut self, name: &str) -> io::Result<()> {
        rvs_io::link::delete(name)
    }

    fn addrs(&self, dev: &str) -> io::Result<Vec<(IpAddr, u8)>> {
        rvs_io::link::addrs(dev)
    }

    fn addr_add(&mut self, dev: &str, ip: IpAddr, prefix: u8) -> io::Result<()> {
        rvs_io::link::addr_add(dev, ip, prefix)
    }

    fn addr_del(&mut self, dev: &str, ip: IpAddr, prefix: u8) -> io::Result<()> {
        rvs_io::link::addr_del(dev, ip, prefix)
    }

    fn kernel_ipip_available(&self) -> bool {
        if matches!(self.link_up("tunl0"), Ok(Some(_))) || Path::new("/sys/module/ipip").exists() {
            return true;
        }
        let Ok(release) = std::fs::read_to_string(self.proc_sys.join("kernel/osrelease")) else {
            return false;
        };
        let dir = Path::new("/lib/modules").join(release.trim());
        ["modules.dep", "modules.builtin"].iter().any(|f| {
            std::fs::read_to_string(dir.join(f)).is_ok_and(|text| {
                text.lines().any(|l| {
                    let path = l.split(':').next().unwrap_or("");
                    let file = path.rsplit('/').next().unwrap_or("");
                    file == "ipip.ko" || file.starts_with("ipip.ko.")
                })
            })
        })
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory host for unit tests of planning, setup and undo.

    use super::*;
    use std::collections::BTreeMap;

    /// Interfaces, addresses and sysctls in maps; `fail_on` makes one operation fail.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct FakeHost {
        pub(crate) sysctls: BTreeMap<String, String>,
        /// Interface name -> administratively up.
        pub(crate) links: BTreeMap<String, bool>,
        pub(crate) addrs: BTreeMap<String, Vec<(IpAddr, u8)>>,
        pub(crate) ipip: bool,
        /// A substring of an operation description that fails with `fail_errno`.
        pub(crate) fail_on: Option<String>,
        /// The errno of `fail_on` (0: EPERM).
        pub(crate) fail_errno: i32,
    }

    impl FakeHost {
        /// A host with `lo` and `eth0`, the usual conf entries, ARP defaults and strict
        /// rp_filter.
        pub(crate) fn typical() -> Self {
            let mut h = Self::default();
            for dev in ["all", "default", "lo", "eth0"] {
                h.sysctls
                    .insert(format!("net/ipv4/conf/{dev}/arp_ignore"), "0".into());
                h.sysctls
                    .insert(format!("net/ipv4/conf/{dev}/arp_announce"), "0".into());
                h.sysctls
                    .insert(format!("net/ipv4/conf/{dev}/rp_filter"), "1".into());
            }
            h.links.insert("lo".into(), true);
            h.links.insert("eth0".into(), true);
            h.addrs
                .insert("lo".into(), vec![("127.0.0.1".parse().expect("ip"), 8)]);
            h.addrs
                .insert("eth0".into(), vec![("198.18.1.2".parse().expect("ip"), 24)]);
            h
        }

        fn check(&self, op: &str) -> io::Result<()> {
            match &self.fail_on {
                Some(f) if op.contains(f.as_str()) => Err(os(if self.fail_errno == 0 {
                    EPERM
                } else {
                    self.fail_errno
                })),
                _ => Ok(()),
            }
        }

        fn new_conf(&mut self, name: &str) {
            for key in ["arp_ignore", "arp_announce", "rp_filter"] {
                let d = self
                    .sysctls
                    .get(&format!("net/ipv4/conf/default/{key}"))
                    .cloned()
                    .unwrap_or_else(|| "0".into());
                self.sysctls
                    .insert(format!("net/ipv4/conf/{name}/{key}"), d);
            }
        }

        fn drop_conf(&mut self, name: &str) {
            let prefix = format!("net/ipv4/conf/{name}/");
            self.sysctls.retain(|k, _| !k.starts_with(&prefix));
        }
    }

    const EPERM: i32 = 1;
    const EOPNOTSUPP: i32 = 95;
    const ENODEV: i32 = 19;
    const EEXIST: i32 = 17;
    const EADDRNOTAVAIL: i32 = 99;
    const ENOENT: i32 = 2;

    impl Host for FakeHost {
        fn sysctl_read(&self, key: &Sysctl) -> io::Result<String> {
            self.sysctls.get(&key.0).cloned().ok_or_else(|| os(ENOENT))
        }

        fn sysctl_write(&mut self, key: &Sysctl, value: &str) -> io::Result<()> {
            self.check(&format!("sysctl {key}"))?;
            match self.sysctls.get_mut(&key.0) {
                Some(v) => {
                    *v = value.to_owned();
                    Ok(())
                }
                None => Err(os(ENOENT)),
            }
        }

        fn ipv4_conf_devices(&self) -> io::Result<Vec<String>> {
            let mut v: Vec<String> = self
                .sysctls
                .keys()
                .filter_map(|k| Sysctl(k.clone()).conf_dev().map(str::to_owned))
                .filter(|d| d != "all" && d != "default")
                .collect();
            v.dedup();
            Ok(v)
        }

        fn link_up(&self, name: &str) -> io::Result<Option<bool>> {
            Ok(self.links.get(name).copied())
        }

        fn set_up(&mut self, name: &str, up: bool) -> io::Result<()> {
            self.check(&format!("set {name} up={up}"))?;
            *self.links.get_mut(name).ok_or_else(|| os(ENODEV))? = up;
            Ok(())
        }

        fn create_tun(&mut self, name: &str) -> io::Result<()> {
            self.check(&format!("create tun {name}"))?;
            if self.links.contains_key(name) {
                return Err(os(EEXIST));
            }
            self.links.insert(name.into(), false);
            self.new_conf(name);
            Ok(())
        }

        fn create_ipip(&mut self, name: &str) -> io::Result<()> {
            self.check(&format!("create ipip {name}"))?;
            if !self.ipip {
                return Err(os(EOPNOTSUPP));
            }
            if self.links.contains_key(name) {
                return Err(os(EEXIST));
            }
            self.links.insert(name.into(), false);
            self.new_conf(name);
            Ok(())
        }

        fn delete_link(&mut self, name: &str) -> io::Result<()> {
            self.check(&format!("delete {name}"))?;
            self.links.remove(name).ok_or_else(|| os(ENODEV))?;
            self.addrs.remove(name);
            self.drop_conf(name);
            Ok(())
        }

        fn addrs(&self, dev: &str) -> io::Result<Vec<(IpAddr, u8)>> {
            if !self.links.contains_key(dev) {
                return Err(os(ENODEV));
            }
            Ok(self.addrs.get(dev).cloned().unwrap_or_default())
        }

        fn addr_add(&mut self, dev: &str, ip: IpAddr, prefix: u8) -> io::Result<()> {
            self.check(&format!("addr add {ip}"))?;
            let a = self.addrs.entry(dev.into()).or_default();
            if a.iter().any(|(x, _)| *x == ip) {
                return Err(os(EEXIST));
            }
            a.push((ip, prefix));
            Ok(())
        }

        fn addr_del(&mut self, dev: &str, ip: IpAddr, prefix: u8) -> io::Result<()> {
            self.check(&format!("addr del {ip}"))?;
            let a = self.addrs.entry(dev.into()).or_default();
            let before = a.len();
            a.retain(|&(x, p)| (x, p) != (ip, prefix));
            if a.len() == before {
                return Err(os(EADDRNOTAVAIL));
            }
            Ok(())
        }

        fn kernel_ipip_available(&self) -> bool {
            self.ipip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names_as_sysctl_8_prints_them() {
        assert_eq!(
            Sysctl::ipv4_conf("all", "arp_ignore").to_string(),
            "net.ipv4.conf.all.arp_ignore"
        );
        let vlan = Sysctl::ipv4_conf("eth0.100", "rp_filter");
        assert_eq!(vlan.to_string(), "net.ipv4.conf.eth0/100.rp_filter");
        assert_eq!(vlan.conf_dev(), Some("eth0.100"));
        assert_eq!(Sysctl("kernel/osrelease".into()).conf_dev(), None);
    }

    #[test]
    fn interface_names() {
        for ok in ["lo", "eth0", "eth0.100", "rvs-tun0", "a23456789012345"] {
            assert!(valid_ifname(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a:0",
            "a234567890123456",
            "x\n",
        ] {
            assert!(!valid_ifname(bad), "{bad:?}");
        }
    }
}
