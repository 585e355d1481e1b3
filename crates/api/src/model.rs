//! The data model: virtual services, destinations, counters, connections.
//!
//! Every type mirrors the IPVS/ipvsadm object of the same name (spec section 1);
//! numeric values (flag bits, defaults, ranges) are the kernel's.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Service flag bits (`IP_VS_SVC_F_*`), as carried in [`ServiceConfig::flags`].
pub mod svc_flags {
    /// `IP_VS_SVC_F_PERSISTENT`: persistent service (`-p`).
    pub const PERSISTENT: u32 = 0x0001;
    /// `IP_VS_SVC_F_HASHED`: kernel-internal, never accepted from a client.
    pub const HASHED: u32 = 0x0002;
    /// `IP_VS_SVC_F_ONEPACKET`: one-packet scheduling (`-o`).
    pub const ONEPACKET: u32 = 0x0004;
    /// `IP_VS_SVC_F_SCHED1`: scheduler flag 1 (`flag-1`, `sh-fallback`, `mh-fallback`).
    pub const SCHED1: u32 = 0x0008;
    /// `IP_VS_SVC_F_SCHED2`: scheduler flag 2 (`flag-2`, `sh-port`, `mh-port`).
    pub const SCHED2: u32 = 0x0010;
    /// `IP_VS_SVC_F_SCHED3`: scheduler flag 3 (`flag-3`).
    pub const SCHED3: u32 = 0x0020;
    /// `sh` fallback flag (alias of [`SCHED1`]).
    pub const SH_FALLBACK: u32 = SCHED1;
    /// `sh` port flag (alias of [`SCHED2`]).
    pub const SH_PORT: u32 = SCHED2;
    /// `mh` fallback flag (alias of [`SCHED1`]).
    pub const MH_FALLBACK: u32 = SCHED1;
    /// `mh` port flag (alias of [`SCHED2`]).
    pub const MH_PORT: u32 = SCHED2;
    /// All scheduler flag bits.
    pub const SCHED_MASK: u32 = SCHED1 | SCHED2 | SCHED3;
    /// Every bit a client may set.
    pub const USER_MASK: u32 = PERSISTENT | ONEPACKET | SCHED_MASK;
}

/// Default persistence timeout applied by `-p` without a value (`IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
/// Largest persistence / protocol timeout in seconds (31 days).
pub const MAX_TIMEOUT: u32 = 86400 * 31;
/// Longest scheduler name in bytes (`IP_VS_SCHEDNAME_MAXLEN` - 1).
pub const SCHED_NAME_MAX: usize = 15;
/// Longest persistence engine name in bytes (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAX: usize = 15;
/// Longest interface name in bytes (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;
/// Largest sync message length (65535 - IPv4 header - UDP header).
pub const MAX_SYNC_MAXLEN: u16 = 65535 - 20 - 8;
/// IPVS version reported by [`Info`]: 1.2.1.
pub const IPVS_VERSION: u32 = 0x01_02_01;
/// Default scheduler (`wlc`).
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// Transport protocol of an address-based virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    pub const fn number(self) -> u16 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    /// Protocol from its IP number.
    pub const fn from_number(n: u16) -> Option<Self> {
        match n {
            6 => Some(Self::Tcp),
            17 => Some(Self::Udp),
            132 => Some(Self::Sctp),
            _ => None,
        }
    }

    /// Upper-case name as listed by ipvsadm (`TCP`, `UDP`, `SCTP`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }

    /// Lower-case name as used in `/etc/services` (`tcp`, `udp`, `sctp`).
    pub const fn services_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// Family of an address.
    pub const fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// Linux `AF_*` number (2 or 10), used for ipvsadm's sort order.
    pub const fn af_number(self) -> u16 {
        match self {
            Self::V4 => 2,
            Self::V6 => 10,
        }
    }
}

/// Identity of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ServiceKey {
    /// `(protocol, VIP, port)` service (`-t`, `-u`, `--sctp-service`).
    Addr {
        /// Transport protocol.
        proto: Protocol,
        /// Virtual IP address; its family is the service's family.
        addr: IpAddr,
        /// Virtual port (0 only for persistent services).
        port: u16,
    },
    /// Firewall-mark service (`-f`, optionally `-6`).
    Fwmark {
        /// Address family of the service (and default of its destinations).
        af: Family,
        /// Mark, never 0.
        mark: u32,
    },
}

impl ServiceKey {
    /// The service's address family.
    pub const fn family(&self) -> Family {
        match self {
            Self::Addr { addr, .. } => Family::of(addr),
            Self::Fwmark { af, .. } => *af,
        }
    }

    /// Protocol of an address service, `None` for fwmark services.
    pub const fn protocol(&self) -> Option<Protocol> {
        match self {
            Self::Addr { proto, .. } => Some(*proto),
            Self::Fwmark { .. } => None,
        }
    }

    /// Virtual port (0 for fwmark services).
    pub const fn port(&self) -> u16 {
        match self {
            Self::Addr { port, .. } => *port,
            Self::Fwmark { .. } => 0,
        }
    }

    /// Firewall mark (0 for address services).
    pub const fn fwmark(&self) -> u32 {
        match self {
            Self::Addr { .. } => 0,
            Self::Fwmark { mark, .. } => *mark,
        }
    }
}

/// Settings of a virtual service (what `-A`/`-E` send).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Identity.
    pub key: ServiceKey,
    /// Scheduler name, ASCII, 1..=15 bytes (e.g. `wlc`).
    pub scheduler: String,
    /// [`svc_flags`] bits: PERSISTENT, ONEPACKET, SCHED1..3.
    pub flags: u32,
    /// Persistence timeout in seconds (1..=2678400 when persistent, else ignored; ≤ 2678400).
    pub timeout_secs: u32,
    /// Persistence granularity: for IPv4 the mask as a host-order u32
    /// (`255.255.255.0` = `0xFFFF_FF00`; must be contiguous when the service is
    /// persistent, ignored otherwise, as ipvsadm accepts `-M` without `-p`); for
    /// IPv6 the prefix length 1..=128 (always checked, like the kernel).
    pub netmask: u32,
    /// Persistence engine name (only `sip` exists), ASCII, ≤ 15 bytes.
    #[serde(default)]
    pub pe: Option<String>,
}

impl ServiceConfig {
    /// A service with ipvsadm's defaults: `wlc`, not persistent, mask /32 (/128).
    pub fn new(key: ServiceKey) -> Self {
        Self {
            key,
            scheduler: DEFAULT_SCHEDULER.to_owned(),
            flags: 0,
            timeout_secs: 0,
            netmask: default_netmask(key.family()),
            pe: None,
        }
    }

    /// Whether the PERSISTENT flag is set.
    pub const fn is_persistent(&self) -> bool {
        self.flags & svc_flags::PERSISTENT != 0
    }

    /// Whether the ONEPACKET flag is set.
    pub const fn is_onepacket(&self) -> bool {
        self.flags & svc_flags::ONEPACKET != 0
    }
}

/// Default persistence netmask for a family: `0xFFFF_FFFF` or 128.
pub const fn default_netmask(af: Family) -> u32 {
    match af {
        Family::V4 => u32::MAX,
        Family::V6 => 128,
    }
}

/// Render an IPv4 netmask held as a host-order u32 (`0xFFFFFF00` → `255.255.255.0`).
pub fn netmask_v4(mask: u32) -> Ipv4Addr {
    Ipv4Addr::from(mask)
}

/// Packet forwarding method of a destination (`IP_VS_CONN_F_FWD_MASK` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMethod {
    /// NAT (`-m`, `IP_VS_CONN_F_MASQ` = 0), listed `Masq`.
    Masq,
    /// Local node (`IP_VS_CONN_F_LOCALNODE` = 1), listed `Local`.
    Local,
    /// IP tunnelling (`-i`, `IP_VS_CONN_F_TUNNEL` = 2), listed `Tunnel`.
    Tunnel,
    /// Direct routing (`-g`, default, `IP_VS_CONN_F_DROUTE` = 3), listed `Route`.
    #[default]
    Route,
}

impl ForwardMethod {
    /// Kernel value.
    pub const fn kernel_value(self) -> u32 {
        match self {
            Self::Masq => 0,
            Self::Local => 1,
            Self::Tunnel => 2,
            Self::Route => 3,
        }
    }

    /// Name as listed by ipvsadm (`Masq`, `Local`, `Tunnel`, `Route`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::Local => "Local",
            Self::Tunnel => "Tunnel",
            Self::Route => "Route",
        }
    }
}

/// Tunnel encapsulation type (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    /// IP-in-IP (0, default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation (1); needs a tunnel port.
    Gue,
    /// GRE (2).
    Gre,
}

impl TunnelType {
    /// Name as used by ipvsadm (`ipip`, `gue`, `gre`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ipip => "ipip",
            Self::Gue => "gue",
            Self::Gre => "gre",
        }
    }
}

/// Tunnel checksum mode (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TunnelCsum {
    /// No checksum (0, default), `--tun-nocsum`, listed `-c`.
    #[default]
    NoCsum,
    /// Checksum (1), `--tun-csum`, listed `+c`.
    Csum,
    /// Remote checksum offload (2), `--tun-remcsum`, listed `r+c`.
    RemCsum,
}

impl TunnelCsum {
    /// Short form used by `--tun-info` (`-c`, `+c`, `r+c`).
    pub const fn info(self) -> &'static str {
        match self {
            Self::NoCsum => "-c",
            Self::Csum => "+c",
            Self::RemCsum => "r+c",
        }
    }

    /// ipvsadm option that selects this mode.
    pub const fn option(self) -> &'static str {
        match self {
            Self::NoCsum => "--tun-nocsum",
            Self::Csum => "--tun-csum",
            Self::RemCsum => "--tun-remcsum",
        }
    }
}

/// Settings of a destination (real server), what `-a`/`-e` send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestConfig {
    /// Real server address (may differ in family from the service only for [`ForwardMethod::Tunnel`]).
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// Weight 0..=i32::MAX; 0 = quiescent.
    pub weight: i32,
    /// Upper connection threshold, 0 = none (≤ i32::MAX).
    pub u_threshold: u32,
    /// Lower connection threshold, 0 = none (≤ i32::MAX). `l > u` is refused by the
    /// daemon with [`crate::ErrorCode::Range`] like the kernel, not by validation.
    pub l_threshold: u32,
    /// Tunnel type (only meaningful for [`ForwardMethod::Tunnel`]; `ipip` otherwise).
    #[serde(default)]
    pub tun_type: TunnelType,
    /// Tunnel destination port: required for `gue`, 0 otherwise.
    #[serde(default)]
    pub tun_port: u16,
    /// Tunnel checksum mode (`nocsum` unless `gue`/`gre`).
    #[serde(default)]
    pub tun_flags: TunnelCsum,
}

impl DestConfig {
    /// A destination with ipvsadm's defaults: direct routing, weight 1, no thresholds, ipip.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Self {
            addr,
            port,
            method: ForwardMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_flags: TunnelCsum::NoCsum,
        }
    }
}

/// Protocol timeouts in seconds (`--set`); in a request 0 means "keep current".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP ESTABLISHED timeout (default 900).
    pub tcp: u32,
    /// TCP FIN_WAIT timeout (default 120).
    pub tcp_fin: u32,
    /// UDP timeout (default 300).
    pub udp: u32,
}

/// Role of a connection-synchronisation daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Sends connection state.
    Master,
    /// Receives connection state.
    Backup,
}

impl SyncState {
    /// `master` or `backup`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Backup => "backup",
        }
    }
}

/// Settings of a sync daemon (`--start-daemon`), also what `--daemon` lists.
///
/// `None` fields mean "daemon decides" in a request; in a listing they are omitted
/// from the output like the kernel's zero values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Master or backup.
    pub state: SyncState,
    /// Multicast interface name, 1..=15 bytes, no NUL (ipvsadm default `eth0`).
    pub mcast_ifn: String,
    /// Sync id 0..=255 (0 = no filtering on a backup).
    pub syncid: u32,
    /// Maximum sync message length 1..=65507.
    #[serde(default)]
    pub sync_maxlen: Option<u16>,
    /// Multicast group (must be a multicast address; default 224.0.0.81).
    #[serde(default)]
    pub mcast_group: Option<IpAddr>,
    /// UDP port, nonzero (default 8848).
    #[serde(default)]
    pub mcast_port: Option<u16>,
    /// Multicast TTL, nonzero (default 1).
    #[serde(default)]
    pub mcast_ttl: Option<u8>,
}

/// Packet/byte/connection counters (since creation or the last zeroing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client.
    pub outpkts: u64,
    /// Bytes client → server.
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
}

/// Estimated rates (per second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// One destination in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestEntry {
    /// Settings.
    pub config: DestConfig,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Persistence templates pointing at this destination.
    pub persist: u32,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
}

/// One service in a listing, with its destinations in kernel order (newest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    /// Settings.
    pub config: ServiceConfig,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Destinations, newest first.
    pub dests: Vec<DestEntry>,
}

/// One connection (or persistence template) as listed by `-L -c`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnEntry {
    /// IP protocol: 6, 17, 132, or 0 for an fwmark template (shown as `IP`).
    pub protocol: u16,
    /// Client address (masked for templates).
    pub caddr: IpAddr,
    /// Client port (0 for templates).
    pub cport: u16,
    /// Virtual address (for fwmark templates: the mark as an IPv4 address).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Destination address.
    pub daddr: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// State name (`ESTABLISHED`, `SYN_RECV`, `NONE`, `ASSURED`, `UDP`, ...).
    pub state: String,
    /// Seconds until expiry.
    pub expires_secs: u64,
    /// Persistence engine name, if any.
    #[serde(default)]
    pub pe_name: Option<String>,
    /// Persistence engine data (e.g. SIP Call-ID), if any.
    #[serde(default)]
    pub pe_data: Option<String>,
    /// Forwarded by the kernel fast path (an offloaded flow) rather than by rvsd.
    #[serde(default)]
    pub fast_path: bool,
}

/// Global information (`GET_INFO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Info {
    /// IPVS version, `0x010201` = 1.2.1.
    pub version: u32,
    /// Connection hash table size (default 4096).
    pub conn_tab_size: u32,
}

impl Default for Info {
    fn default() -> Self {
        Self {
            version: IPVS_VERSION,
            conn_tab_size: 4096,
        }
    }
}

impl Info {
    /// `(major, minor, patch)` of [`Info::version`].
    pub const fn version_triple(&self) -> (u32, u32, u32) {
        (
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff,
        )
    }
}
