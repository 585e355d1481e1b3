//! The state file: what `setup` configured and every change it made, with the old values,
//! so that `undo` can put the host back exactly as it was.
//!
//! It is rewritten (temporary file, `fsync`, `rename`) after each change, so a `setup`
//! that dies half-way still leaves a file `undo` can use. JSON, one object:
//!
//! ```json
//! {"version":1,"vips":["198.18.0.100"],"tunnel":{"type":"ipip"},"decap":"userspace",
//!  "tun_name":"rvs-tun0","decap_pid":1234,
//!  "changes":[{"kind":"tun_device","name":"rvs-tun0"},
//!             {"kind":"address","dev":"lo","addr":"198.18.0.100","prefix":32},
//!             {"kind":"sysctl","key":"net/ipv4/conf/all/arp_ignore","old":"0","new":"1"}]}
//! ```

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::host::Sysctl;

/// Format version written in the file.
pub(crate) const VERSION: u32 = 1;

/// The tunnel the real server terminates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Tunnel {
    /// Direct routing only: no decapsulation.
    None,
    /// IP-in-IP (protocols 4 and 41).
    Ipip,
    /// GUE over UDP.
    Gue {
        /// UDP destination port the director sends to.
        port: u16,
    },
}

impl fmt::Display for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Ipip => f.write_str("ipip"),
            Self::Gue { port } => write!(f, "gue (udp port {port})"),
        }
    }
}

/// Who decapsulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DecapMode {
    /// Nobody: direct routing.
    None,
    /// The kernel's `ipip` module, through `tunl0`.
    Kernel,
    /// `rvs-rs decap`, through a TUN device.
    Userspace,
}

/// One change `setup` made; `undo` reverts them in reverse order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Change {
    /// A persistent TUN device was created and set up; undo deletes it.
    TunDevice {
        /// Interface name.
        name: String,
    },
    /// An `ipip` device was created (loading the module); undo deletes it (the module's
    /// fallback `tunl0` itself cannot be deleted and stays, down).
    IpipDevice {
        /// Interface name.
        name: String,
    },
    /// An existing interface was down and was set up; undo sets it down.
    LinkUp {
        /// Interface name.
        name: String,
    },
    /// An address was added; undo removes it.
    Address {
        /// Interface.
        dev: String,
        /// The address.
        addr: IpAddr,
        /// Prefix length.
        prefix: u8,
    },
    /// A sysctl was changed; undo writes `old` back.
    Sysctl {
        /// Path under `/proc/sys`.
        key: String,
        /// Value before.
        old: String,
        /// Value written.
        new: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TunDevice { name } => {
                write!(
                    f,
                    "device   create TUN device {name} (persistent) and set it up"
                )
            }
            Self::IpipDevice { name } => write!(
                f,
                "device   create {name} (type ipip: loads the kernel's ipip module)"
            ),
            Self::LinkUp { name } => write!(f, "device   set {name} up"),
            Self::Address { dev, addr, prefix } => {
                write!(f, "address  add {addr}/{prefix} to {dev}")
            }
            Self::Sysctl { key, old, new } => {
                write!(f, "sysctl   {} {old} -> {new}", Sysctl(key.clone()))
            }
        }
    }
}

/// The whole state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// [`VERSION`].
    pub(crate) version: u32,
    /// The VIPs configured.
    pub(crate) vips: Vec<IpAddr>,
    /// The tunnel terminated.
    pub(crate) tunnel: Tunnel,
    /// Who decapsulates.
    pub(crate) decap: DecapMode,
    /// The TUN device of userspace decapsulation.
    pub(crate) tun_name: String,
    /// The running `rvs-rs decap` (or `setup --foreground`) process, if any: `undo` stops
    /// it first.
    #[serde(default)]
    pub(crate) decap_pid: Option<u32>,
    /// Changes made, in order.
    pub(crate) changes: Vec<Change>,
}

impl State {
    /// Read a state file.
    ///
    /// # Errors
    ///
    /// When it cannot be read or parsed, or has another version.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the state file {}", path.display()))?;
        let st: Self = serde_json::from_str(&text)
            .with_context(|| format!("parsing the state file {}", path.display()))?;
        if st.version != VERSION {
            bail!(
                "state file {} has version {}, this rvs-rs reads version {VERSION}",
                path.display(),
                st.version
            );
        }
        Ok(st)
    }

    /// Write the state file atomically (temporary file beside it, `fsync`, `rename`),
    /// creating its directory (mode 0755) when needed.
    ///
    /// # Errors
    ///
    /// When the directory or file cannot be written.
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let mut text = serde_json::to_string_pretty(self).context("encoding the state")?;
        text.push('\n');
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().with_context(|| format!("writing the state file {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            version: VERSION,
            vips: vec![
                "198.18.0.100".parse().expect("ip"),
                "2001:db8::100".parse().expect("ip"),
            ],
            tunnel: Tunnel::Gue { port: 6080 },
            decap: DecapMode::Userspace,
            tun_name: "rvs-tun0".into(),
            decap_pid: Some(4242),
            changes: vec![
                Change::TunDevice {
                    name: "rvs-tun0".into(),
                },
                Change::IpipDevice {
                    name: "tunl0".into(),
                },
                Change::LinkUp {
                    name: "tunl0".into(),
                },
                Change::Address {
                    dev: "lo".into(),
                    addr: "198.18.0.100".parse().expect("ip"),
                    prefix: 32,
                },
                Change::Sysctl {
                    key: "net/ipv4/conf/all/arp_ignore".into(),
                    old: "0".into(),
                    new: "1".into(),
                },
            ],
        }
    }

    fn temp_path(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("rvs-rs-unit-{}-{tag}", std::process::id()))
            .join("sub")
            .join("state.json")
    }

    #[test]
    fn state_file_round_trip() {
        let path = temp_path("round-trip");
        let st = sample();
        st.save(&path).expect("save");
        assert_eq!(State::load(&path).expect("load"), st);
        // Saving again replaces the file and leaves no temporary behind.
        let mut st2 = st;
        st2.decap_pid = None;
        st2.save(&path).expect("save again");
        assert_eq!(State::load(&path).expect("load"), st2);
        let dir = path.parent().expect("dir");
        let names: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        std::fs::remove_dir_all(dir.parent().expect("top")).expect("cleanup");
    }

    #[test]
    fn state_file_format_is_stable() {
        let json = serde_json::to_value(sample()).expect("encode");
        assert_eq!(
            json["tunnel"],
            serde_json::json!({"type": "gue", "port": 6080})
        );
        assert_eq!(json["decap"], "userspace");
        assert_eq!(
            json["changes"][4],
            serde_json::json!({"kind": "sysctl", "key": "net/ipv4/conf/all/arp_ignore",
                               "old": "0", "new": "1"})
        );
        // A file written without decap_pid still loads.
        let mut v = json;
        v.as_object_mut().expect("object").remove("decap_pid");
        let st: State = serde_json::from_value(v).expect("decode");
        assert_eq!(st.decap_pid, None);
    }

    #[test]
    fn bad_state_files_are_clear_errors() {
        let path = temp_path("bad");
        let e = State::load(&path).expect_err("missing");
        assert!(format!("{e:#}").contains("reading the state file"), "{e:#}");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, "{not json").expect("write");
        let e = State::load(&path).expect_err("garbage");
        assert!(format!("{e:#}").contains("parsing the state file"), "{e:#}");
        let mut st = sample();
        st.version = 99;
        st.save(&path).expect("save");
        let e = State::load(&path).expect_err("version");
        assert!(format!("{e:#}").contains("version 99"), "{e:#}");
        std::fs::remove_dir_all(path.parent().and_then(Path::parent).expect("top"))
            .expect("cleanup");
    }

    #[test]
    fn changes_render_for_humans() {
        let lines: Vec<String> = sample().changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "device   create TUN device rvs-tun0 (persistent) and set it up",
                "device   create tunl0 (type ipip: loads the kernel's ipip module)",
                "device   set tunl0 up",
                "address  add 198.18.0.100/32 to lo",
                "sysctl   net.ipv4.conf.all.arp_ignore 0 -> 1",
            ]
        );
    }
}
