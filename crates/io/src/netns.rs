//! Network namespaces: a handle to run code inside one and, with the `testing` feature,
//! RAII namespaces, veth pairs and a two-namespace lab for tests.
//!
//! Sockets belong to the namespace of the thread that created them and stay there, so the
//! way to use an interface of another namespace is to create its sockets from a thread that
//! joined it: [`NetNsHandle::run_in`] does that on a short-lived helper thread, leaving the
//! caller's thread where it was.
//!
//! Test namespaces are named `rvs-<pid>-<n>-<tag>`, live in `/run/netns` (so `ip netns`
//! sees them) and are deleted on drop, also when a test panics; namespaces left behind by
//! a killed test process (its pid gone) are reaped by the next `Pair::new`. Interfaces are
//! created directly inside their namespace (`ip -n NS link add ... netns PEER`), so the
//! host's own namespace never holds, even briefly, anything a test made.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::{os_err, syscall};

/// An open handle on a network namespace (a descriptor of its `ns/net` file).
#[derive(Debug)]
pub struct NetNsHandle {
    file: File,
    what: String,
}

impl NetNsHandle {
    /// The namespace of the calling thread.
    ///
    /// # Errors
    ///
    /// When `/proc/thread-self/ns/net` cannot be opened.
    pub fn current() -> io::Result<Self> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// A namespace named by a file: `/proc/PID/ns/net` or a bind mount such as
    /// `/run/netns/NAME`.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened.
    pub fn open(path: &Path) -> io::Result<Self> {
        let what = path.display().to_string();
        let file = File::open(path).map_err(|e| os_err("open(netns)", &what, e))?;
        Ok(Self { file, what })
    }

    /// A namespace created with `ip netns add NAME`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a name with a `/`; otherwise as [`NetNsHandle::open`].
    pub fn named(name: &str) -> io::Result<Self> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(crate::invalid(format!("invalid namespace name {name:?}")));
        }
        Self::open(&Path::new("/run/netns").join(name))
    }

    /// Run `f` on a helper thread that joined this namespace, and return its result. The
    /// calling thread's namespace does not change. Sockets `f` creates stay in this
    /// namespace wherever they are used afterwards.
    ///
    /// A panic in `f` is resumed on the calling thread.
    ///
    /// # Errors
    ///
    /// When the helper thread cannot be started or cannot join the namespace (`setns(2)`
    /// needs `CAP_SYS_ADMIN`).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let fd = self.file.as_raw_fd();
        let what = &self.what;
        std::thread::scope(|s| {
            let h = std::thread::Builder::new()
                .name("rvs-netns".into())
                .spawn_scoped(s, move || {
                    // SAFETY: `fd` is a namespace file kept open by `self` for the whole
                    // scope; setns(2) only changes this helper thread's namespace.
                    syscall(unsafe { libc::setns(fd, libc::CLONE_NEWNET) })
                        .map_err(|e| os_err("setns(CLONE_NEWNET)", what, e))?;
                    Ok(f())
                })
                .map_err(|e| os_err("spawn(netns thread)", what, e))?;
            match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

#[cfg(any(test, feature = "testing"))]
pub use lab::*;

#[cfg(any(test, feature = "testing"))]
mod lab {
    use std::io;
    use std::process::{Command, Output, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::NetNsHandle;

    static NEXT: AtomicU32 = AtomicU32::new(0);

    /// Why tests needing namespaces cannot run here, or `None` when they can: they need
    /// root (or `CAP_SYS_ADMIN` + `CAP_NET_ADMIN`) and `ip(8)`.
    pub fn skip_reason() -> Option<String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not running as root: network namespaces cannot be created".into());
        }
        match Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            _ => return Some("ip(8) from iproute2 is not installed".into()),
        }
        if !std::path::Path::new("/proc/thread-self/ns/net").exists() {
            return Some("kernel without network namespaces".into());
        }
        None
    }

    /// Run a command, returning its stdout, or an error with its stderr when it failed.
    pub fn run_checked(cmd: &mut Command) -> io::Result<String> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("running {cmd:?}: {e}")))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{cmd:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A network namespace made for a test and deleted (with every interface in it) on
    /// drop.
    #[derive(Debug)]
    pub struct NetNs {
        name: String,
        handle: NetNsHandle,
    }

    impl NetNs {
        /// Create `rvs-<pid>-<n>-<tag>` and bring its loopback up. `tag` is for humans
        /// reading `ip netns` and may hold ASCII letters, digits and `-`.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for a bad tag; the `ip` command's error otherwise.
        pub fn new(tag: &str) -> io::Result<Self> {
            if tag.is_empty()
                || tag.len() > 32
                || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(crate::invalid(format!("invalid namespace tag {tag:?}")));
            }
            let name = format!(
                "rvs-{}-{}-{tag}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            run_checked(Command::new("ip").args(["netns", "add", &name]))?;
            // From here on a failure must still delete it.
            let handle = match NetNsHandle::named(&name) {
                Ok(h) => h,
                Err(e) => {
                    let _ = Command::new("ip").args(["netns", "del", &name]).output();
                    return Err(e);
                }
            };
            let ns = Self { name, handle };
            ns.ip(&["link", "set", "lo", "up"])?;
            Ok(ns)
        }

        /// The namespace's name, as `ip netns` shows it.
        pub fn name(&self) -> &str {
            &self.name
        }

        /// A handle to run code inside with [`NetNsHandle::run_in`].
        pub fn handle(&self) -> &NetNsHandle {
            &self.handle
        }

        /// Run `f` inside the namespace (see [`NetNsHandle::run_in`]).
        ///
        /// # Errors
        ///
        /// When the namespace cannot be joined.
        pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
            self.handle.run_in(f)
        }

        /// `ip -n NAME ARGS...`, returning its stdout.
        ///
        /// # Errors
        ///
        /// When `ip` fails, with its stderr.
        pub fn ip(&self, args: &[&str]) -> io::Result<String> {
            run_checked(Command::new("ip").arg("-n").arg(&self.name).args(args))
        }

        /// `ip netns exec NAME PROG ARGS...`, returning its full output whatever its exit
        /// status. The program should bound its own run time.
        ///
        /// # Errors
        ///
        /// When the command cannot be started.
        pub fn exec(&self, prog: &str, args: &[&str]) -> io::Result<Output> {
            Command::new("ip")
                .args(["netns", "exec", &self.name, prog])
                .args(args)
                .stdin(Stdio::null())
                .output()
        }

        /// A sysctl inside the namespace, e.g. `("net.ipv4.ip_forward", "1")`.
        ///
        /// # Errors
        ///
        /// When `sysctl` fails.
        pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
            let kv = format!("{key}={value}");
            run_checked(
                Command::new("ip")
                    .args(["netns", "exec", &self.name, "sysctl", "-q", "-w"])
                    .arg(kv),
            )
            .map(drop)
        }
    }

    impl Drop for NetNs {
        fn drop(&mut self) {
            match Command::new("ip")
                .args(["netns", "del", &self.name])
                .stdin(Stdio::null())
                .output()
            {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "rvs-io: deleting namespace {} failed: {}",
                    self.name,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("rvs-io: deleting namespace {} failed: {e}", self.name),
            }
        }
    }

    /// Join two namespaces with a veth pair: `a_if` in `a`, `b_if` in `b`, both up.
    ///
    /// # Errors
    ///
    /// When `ip` fails.
    pub fn veth(a: &NetNs, a_if: &str, b: &NetNs, b_if: &str) -> io::Result<()> {
        a.ip(&[
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ])?;
        a.ip(&["link", "set", a_if, "up"])?;
        b.ip(&["link", "set", b_if, "up"])?;
        Ok(())
    }

    /// Delete `rvs-<pid>-*` namespaces whose process is gone (left by a killed test run).
    /// Only namespaces older than ten minutes are considered, so that one made by a process
    /// this one cannot see (another pid namespace) is not taken while in use.
    pub fn reap_stale() {
        let Ok(dir) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("rvs-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(600));
            if old && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
            }
        }
    }

    /// Two namespaces joined by one veth pair, addressed and up:
    ///
    /// ```text
    ///  ns a                                   ns b
    ///  veth-a 198.18.0.1/24 2001:db8::1/64 -- veth-b 198.18.0.2/24 2001:db8::2/64
    /// ```
    ///
    /// IPv6 duplicate address detection is off so the addresses work at once.
    #[derive(Debug)]
    pub struct Pair {
        /// The first namespace.
        pub a: NetNs,
        /// The second namespace.
        pub b: NetNs,
    }

    impl Pair {
        /// Interface name in `a`.
        pub const A_IF: &'static str = "veth-a";
        /// Interface name in `b`.
        pub const B_IF: &'static str = "veth-b";
        /// IPv4 address of `a`.
        pub const A_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 1);
        /// IPv4 address of `b`.
        pub const B_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 2);
        /// IPv6 address of `a`.
        pub const A_V6: std::net::Ipv6Addr =
            std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        /// IPv6 address of `b`.
        pub const B_V6: std::net::Ipv6Addr =
            std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

        /// Build the pair; `tag` names both namespaces (`<tag>-a`, `<tag>-b`).
        ///
        /// # Errors
        ///
        /// When any step fails; what was made so far is deleted.
        pub fn new(tag: &str) -> io::Result<Self> {
            reap_stale();
            let a = NetNs::new(&format!("{tag}-a"))?;
            let b = NetNs::new(&format!("{tag}-b"))?;
            for ns in [&a, &b] {
                ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
                ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
            }
            veth(&a, Self::A_IF, &b, Self::B_IF)?;
            a.ip(&["addr", "add", "198.18.0.1/24", "dev", Self::A_IF])?;
            b.ip(&["addr", "add", "198.18.0.2/24", "dev", Self::B_IF])?;
            a.ip(&["addr", "add", "2001:db8::1/64", "dev", Self::A_IF, "nodad"])?;
            b.ip(&["addr", "add", "2001:db8::2/64", "dev", Self::B_IF, "nodad"])?;
            Ok(Self { a, b })
        }
    }
}
