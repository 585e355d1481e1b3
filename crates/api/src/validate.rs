//! Field-by-field validation of decoded requests (ecosystem.md 6.4).
//!
//! Every request a server decodes goes through [`Request::validate`] before it
//! touches any state; a batch is validated as a whole, so an invalid operation
//! anywhere in it rejects the batch before the first operation runs.
//!
//! Error codes are chosen so that rvsadm prints what ipvsadm prints when the
//! kernel refuses the same input: `Inval` for most fields, `Range` for a negative
//! weight or an out-of-range threshold, `SchedNotFound` for a scheduler or
//! persistence-engine name that cannot exist.
//!
//! Deliberately **not** checked here (they need state, the daemon checks them and
//! answers like the kernel):
//! * `l_threshold > u_threshold` → [`ErrorCode::Range`] (also when `u_threshold` is 0);
//! * whether the scheduler / persistence engine exists → [`ErrorCode::SchedNotFound`];
//! * whether a destination address is local or routable, mixed families while a sync
//!   daemon runs, more `mh` destinations than its table → [`ErrorCode::Inval`].

use core::net::IpAddr;

use crate::model::{
    DaemonConfig, DestConfig, Family, ForwardMethod, IFNAME_MAX, MAX_SYNC_MAXLEN, MAX_TIMEOUT,
    PE_NAME_MAX, SCHED_NAME_MAX, ServiceConfig, ServiceKey, Timeouts, TunnelCsum, TunnelType,
    svc_flags,
};
use crate::proto::{ApiError, ErrorCode, Request};

/// Most operations one [`Request::Batch`] may carry.
pub const MAX_BATCH_LEN: usize = 65_536;

fn inval(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Inval, msg)
}

fn check_name(what: &str, s: &str, max: usize, code: ErrorCode) -> Result<(), ApiError> {
    if s.is_empty() {
        return Err(ApiError::new(code, format!("{what} is empty")));
    }
    if s.len() > max {
        return Err(ApiError::new(
            code,
            format!("{what} is longer than {max} bytes"),
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            code,
            format!("{what} must be printable ASCII without spaces"),
        ));
    }
    Ok(())
}

impl ServiceKey {
    /// Check the key alone: an fwmark must be nonzero.
    ///
    /// # Errors
    /// [`ErrorCode::Inval`] for fwmark 0.
    pub fn validate(&self) -> Result<(), ApiError> {
        match self {
            Self::Fwmark { mark: 0, .. } => Err(inval("fwmark must be nonzero")),
            _ => Ok(()),
        }
    }
}

impl ServiceConfig {
    /// Check every field of a service definition.
    ///
    /// # Errors
    /// [`ErrorCode::Inval`] for bad flags, timeout, netmask or zero port;
    /// [`ErrorCode::SchedNotFound`] for a scheduler/PE name that cannot exist.
    pub fn validate(&self) -> Result<(), ApiError> {
        self.key.validate()?;
        check_name(
            "scheduler name",
            &self.scheduler,
            SCHED_NAME_MAX,
            ErrorCode::SchedNotFound,
        )?;
        if let Some(pe) = &self.pe {
            check_name(
                "persistence engine name",
                pe,
                PE_NAME_MAX,
                ErrorCode::SchedNotFound,
            )?;
        }
        if self.flags & !svc_flags::USER_MASK != 0 {
            return Err(inval(format!(
                "unknown service flag bits {:#x}",
                self.flags & !svc_flags::USER_MASK
            )));
        }
        if self.is_persistent() {
            if !(1..=MAX_TIMEOUT).contains(&self.timeout_secs) {
                return Err(inval(format!(
                    "persistence timeout must be 1..={MAX_TIMEOUT} seconds"
                )));
            }
        } else if self.timeout_secs > MAX_TIMEOUT {
            return Err(inval(format!(
                "persistence timeout must be at most {MAX_TIMEOUT} seconds"
            )));
        }
        match self.key.family() {
            Family::V4 => {
                // Only meaningful (and only checked) for persistent services:
                // ipvsadm sends any -M value without -p and the kernel ignores it.
                let m = self.netmask;
                if self.is_persistent() && m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(inval(format!(
                        "IPv4 netmask {} is not contiguous",
                        crate::model::netmask_v4(m)
                    )));
                }
            }
            Family::V6 => {
                if !(1..=128).contains(&self.netmask) {
                    return Err(inval("IPv6 netmask (prefix length) must be 1..=128"));
                }
            }
        }
        if let ServiceKey::Addr { port: 0, .. } = self.key
            && !self.is_persistent()
        {
            return Err(inval("zero port specified for non-persistent service"));
        }
        Ok(())
    }
}

fn check_dest_addr(addr: &IpAddr) -> Result<(), ApiError> {
    let bad = match addr {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    };
    if bad {
        return Err(inval(format!("destination address {addr} is not unicast")));
    }
    Ok(())
}

impl DestConfig {
    /// Check a destination against the service it is added to / edited in.
    ///
    /// `l_threshold > u_threshold` is left to the daemon (kernel `ERANGE`).
    ///
    /// # Errors
    /// [`ErrorCode::Range`] for a negative weight or a threshold above `i32::MAX`;
    /// [`ErrorCode::Inval`] for a non-unicast address, a family mismatch without
    /// tunnelling, a DR/TUN port differing from the service port, or a bad tunnel
    /// type/port/checksum combination.
    pub fn validate_for(&self, service: &ServiceKey) -> Result<(), ApiError> {
        service.validate()?;
        check_dest_addr(&self.addr)?;
        if self.weight < 0 {
            return Err(ApiError::new(ErrorCode::Range, "weight must be >= 0"));
        }
        let max = i32::MAX.unsigned_abs();
        if self.u_threshold > max || self.l_threshold > max {
            return Err(ApiError::new(
                ErrorCode::Range,
                "thresholds must be at most 2147483647",
            ));
        }
        if Family::of(&self.addr) != service.family() && self.method != ForwardMethod::Tunnel {
            return Err(inval(
                "different address family is allowed only for tunneling servers",
            ));
        }
        if let ServiceKey::Addr { port, .. } = service
            && matches!(self.method, ForwardMethod::Route | ForwardMethod::Tunnel)
            && self.port != *port
        {
            return Err(inval(
                "destination port must equal the service port for direct routing and tunneling",
            ));
        }
        if self.method == ForwardMethod::Tunnel {
            match self.tun_type {
                TunnelType::Ipip => {
                    if self.tun_port != 0 || self.tun_flags != TunnelCsum::NoCsum {
                        return Err(inval("ipip tunnels take no tunnel port or checksum option"));
                    }
                }
                TunnelType::Gue => {
                    if self.tun_port == 0 {
                        return Err(inval("gue tunnels need a tunnel port"));
                    }
                }
                TunnelType::Gre => {
                    if self.tun_port != 0 {
                        return Err(inval("gre tunnels take no tunnel port"));
                    }
                    if self.tun_flags == TunnelCsum::RemCsum {
                        return Err(inval("gre tunnels do not support remote checksum"));
                    }
                }
            }
        } else if self.tun_type != TunnelType::Ipip
            || self.tun_port != 0
            || self.tun_flags != TunnelCsum::NoCsum
        {
            return Err(inval("tunnel options need the tunnel forwarding method"));
        }
        Ok(())
    }
}

impl Timeouts {
    /// Each timeout must be at most 31 days (0 = keep current).
    ///
    /// # Errors
    /// [`ErrorCode::Inval`] when a value exceeds 2678400.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.tcp > MAX_TIMEOUT || self.tcp_fin > MAX_TIMEOUT || self.udp > MAX_TIMEOUT {
            return Err(inval(format!(
                "timeouts must be at most {MAX_TIMEOUT} seconds"
            )));
        }
        Ok(())
    }
}

impl DaemonConfig {
    /// Check a sync-daemon definition.
    ///
    /// # Errors
    /// [`ErrorCode::Inval`] for an empty, over-long or NUL-containing interface
    /// name (whether the interface exists is the daemon's check, `NoDevice`), syncid > 255, maxlen outside
    /// 1..=65507, a non-multicast group, port 0 or TTL 0.
    pub fn validate(&self) -> Result<(), ApiError> {
        let ifn = &self.mcast_ifn;
        if ifn.is_empty() || ifn.len() > IFNAME_MAX || ifn.contains('\0') {
            return Err(inval(format!(
                "multicast interface name must be 1..={IFNAME_MAX} bytes without NUL"
            )));
        }
        if self.syncid > 255 {
            return Err(inval("syncid must be 0..=255"));
        }
        if let Some(m) = self.sync_maxlen
            && (m == 0 || m > MAX_SYNC_MAXLEN)
        {
            return Err(inval(format!("sync maxlen must be 1..={MAX_SYNC_MAXLEN}")));
        }
        if let Some(g) = self.mcast_group
            && !g.is_multicast()
        {
            return Err(inval(format!("{g} is not a multicast group")));
        }
        if self.mcast_port == Some(0) {
            return Err(inval("multicast port must be nonzero"));
        }
        if self.mcast_ttl == Some(0) {
            return Err(inval("multicast TTL must be nonzero"));
        }
        Ok(())
    }
}

impl Request {
    /// Check every field of the request (recursively for a batch).
    ///
    /// # Errors
    /// The first problem found, as an [`ApiError`]; for a batch the message is
    /// prefixed with the index of the offending operation.
    pub fn validate(&self) -> Result<(), ApiError> {
        self.validate_inner(true)
    }

    fn validate_inner(&self, top: bool) -> Result<(), ApiError> {
        match self {
            Self::AddService(s) | Self::EditService(s) => s.validate(),
            Self::DelService(k) | Self::GetService(k) | Self::Zero(Some(k)) => k.validate(),
            Self::AddDest { service, dest } | Self::EditDest { service, dest } => {
                dest.validate_for(service)
            }
            Self::DelDest { service, .. } => service.validate(),
            Self::SetTimeouts(t) => t.validate(),
            Self::StartDaemon(d) => d.validate(),
            Self::Flush
            | Self::StopDaemon(_)
            | Self::Zero(None)
            | Self::GetInfo
            | Self::GetServices
            | Self::GetTimeouts
            | Self::GetDaemons
            | Self::GetConns => Ok(()),
            Self::Batch(items) => {
                if !top {
                    return Err(inval("nested batches are not allowed"));
                }
                if items.len() > MAX_BATCH_LEN {
                    return Err(ApiError::new(
                        ErrorCode::TooLarge,
                        format!(
                            "batch of {} operations exceeds {MAX_BATCH_LEN}",
                            items.len()
                        ),
                    ));
                }
                for (i, r) in items.iter().enumerate() {
                    r.validate_inner(false)
                        .map_err(|e| ApiError::new(e.code, format!("batch[{i}]: {}", e.message)))?;
                }
                Ok(())
            }
        }
    }
}
