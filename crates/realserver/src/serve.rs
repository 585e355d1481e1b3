//! The userspace decapsulator: receive tunnel packets addressed to this host, check the
//! inner packet ([`crate::decap`]), and write it to the TUN device, where the kernel
//! receives it as if it had arrived on a link and delivers it to the VIP's sockets.
//! Replies are ordinary locally generated packets: they leave through normal routing,
//! straight to the client, never through the tunnel.
//!
//! Receivers (each non-blocking, all waited on with one `poll(2)`):
//!
//! - IP-in-IP: raw sockets for protocol 4 (IPv4 VIPs) and 41 (IPv6 VIPs), over IPv4 and
//!   over IPv6. An IPv4 raw socket returns the outer header too; an IPv6 one does not.
//! - GUE: UDP sockets on the GUE port, IPv4 and IPv6.
//!
//! One thread, one loop: at most [`BATCH`] packets per receiver per turn so no receiver
//! starves the others, and SIGINT/SIGTERM through a signalfd in the same `poll`.

use std::io;
use std::net::{IpAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use rvs_io::rawsock::{RawSocket, any_addr, bind_udp};
use rvs_io::signal::SignalFd;
use rvs_io::tun::TunDevice;

use crate::decap::{
    self, Counters, DropReason, InnerFamily, PROTO_IPIP, PROTO_IPV6, Source, apply_outer_ecn,
    check_inner,
};
use crate::state::Tunnel;

/// Packets read from one receiver before looking at the others.
pub(crate) const BATCH: usize = 64;
/// Receive buffer: any IP packet, plus one byte to notice truncation.
const BUF_LEN: usize = decap::MAX_INNER + 64;
/// Kernel receive buffer asked for each socket.
const SOCKET_RCVBUF: u32 = 4 << 20;

/// What the decapsulator serves.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Inner destinations accepted.
    pub(crate) vips: Vec<IpAddr>,
    /// IP-in-IP or GUE.
    pub(crate) tunnel: Tunnel,
    /// The TUN device to write to (created by `setup`).
    pub(crate) tun_name: String,
    /// Print the counters every `stats_interval`.
    pub(crate) verbose: bool,
    /// Period of the counters with `verbose`.
    pub(crate) stats_interval: Duration,
}

enum Receiver {
    Raw(RawSocket),
    Udp(UdpSocket),
}

/// What a receiver returns, as far as decapsulation is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RxKind {
    /// A raw IPv4 socket: the outer IPv4 header, then the inner packet.
    RawV4,
    /// A raw IPv6 socket for this protocol: the inner packet only.
    RawV6(u8),
    /// A UDP socket: GUE header, then the inner packet.
    Gue,
}

impl Receiver {
    fn kind(&self) -> RxKind {
        match self {
            Self::Raw(s) if s.is_ipv6() => RxKind::RawV6(s.protocol()),
            Self::Raw(_) => RxKind::RawV4,
            Self::Udp(_) => RxKind::Gue,
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Self::Raw(s) => s.as_fd().as_raw_fd(),
            Self::Udp(s) => s.as_raw_fd(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Raw(s) => format!(
                "raw {} protocol {}",
                if s.is_ipv6() { "IPv6" } else { "IPv4" },
                s.protocol()
            ),
            Self::Udp(s) => match s.local_addr() {
                Ok(a) => format!("udp {a}"),
                Err(_) => "udp".into(),
            },
        }
    }
}

/// Open the receivers `cfg` needs. An IPv6 receiver that cannot be opened (IPv6 disabled)
/// is skipped with a warning; an IPv4 one, or having none at all, is an error.
fn open_receivers(cfg: &Config, warn: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Receiver>> {
    let mut out = Vec::new();
    match cfg.tunnel {
        Tunnel::None => anyhow::bail!("nothing to decapsulate: the tunnel is `none`"),
        Tunnel::Ipip => {
            let mut protos = Vec::new();
            if cfg.vips.iter().any(IpAddr::is_ipv4) {
                protos.push(PROTO_IPIP);
            }
            if cfg.vips.iter().any(IpAddr::is_ipv6) {
                protos.push(PROTO_IPV6);
            }
            for outer_v6 in [false, true] {
                for &p in &protos {
                    match RawSocket::open(outer_v6, p) {
                        Ok(s) => {
                            let _ = s.set_recv_buffer(SOCKET_RCVBUF);
                            out.push(Receiver::Raw(s));
                        }
                        Err(e) if outer_v6 => {
                            warn(&format!("no IP-in-IP over IPv6 for protocol {p}: {e}"))
                        }
                        Err(e) => {
                            return Err(e).context(format!(
                                "opening a raw socket for IP protocol {p} (needs CAP_NET_RAW)"
                            ));
                        }
                    }
                }
            }
        }
        Tunnel::Gue { port } => {
            for v6 in [false, true] {
                match bind_udp(any_addr(v6, port)) {
                    Ok(s) => out.push(Receiver::Udp(s)),
                    Err(e) if v6 => warn(&format!("no GUE over IPv6 on port {port}: {e}")),
                    Err(e) => {
                        return Err(e)
                            .context(format!("binding the GUE port {port} (is it in use?)"));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Decapsulate one received datagram of `n` bytes in `buf`, in place: returns where the
/// inner packet to deliver lies in `buf`, and which receiver kind it came from.
fn handle(
    buf: &mut [u8],
    n: usize,
    rx: RxKind,
    vips: &[IpAddr],
) -> Result<(Range<usize>, Source), DropReason> {
    let data = buf.get(..n).ok_or(DropReason::TooBig)?;
    let (range, family, outer_tos, source) = match rx {
        RxKind::RawV4 => {
            let (tos, proto, range) = decap::outer_ipv4(data)?;
            let fam = InnerFamily::from_proto(proto).ok_or(DropReason::OuterMalformed)?;
            (range, fam, Some(tos), Source::IpipOuterV4)
        }
        RxKind::RawV6(proto) => {
            let fam = InnerFamily::from_proto(proto).ok_or(DropReason::OuterMalformed)?;
            (0..n, fam, None, Source::IpipOuterV6)
        }
        RxKind::Gue => {
            let (fam, off) = decap::gue(data)?;
            (off..n, fam, None, Source::Gue)
        }
    };
    let inner = buf.get_mut(range.clone()).ok_or(DropReason::Truncated)?;
    let len = check_inner(inner, family, vips)?;
    let inner = inner.get_mut(..len).ok_or(DropReason::Truncated)?;
    if let Some(tos) = outer_tos {
        apply_outer_ecn(inner, tos)?;
    }
    decap::finish_offloaded_checksum(inner);
    Ok((range.start..range.start + len, source))
}

/// Receive one datagram from `rx` into `buf`: `None` when nothing is queued, else its
/// full length (which may exceed `buf.len()`).
fn recv(rx: &Receiver, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match rx {
        Receiver::Raw(s) => Ok(s.recv_from(buf)?.map(|(n, _)| n)),
        Receiver::Udp(s) => match s.recv_from(buf) {
            Ok((n, _)) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        },
    }
}

/// Run the decapsulator until SIGINT or SIGTERM arrives on `signals`. `ready` is called
/// once everything is open (with a description of the receivers). Returns the counters.
///
/// # Errors
///
/// When the TUN device or a required receiver cannot be opened, or `poll` fails.
pub(crate) fn run(
    cfg: &Config,
    signals: &SignalFd,
    log: &mut dyn FnMut(&str),
    ready: &mut dyn FnMut(&[String]),
) -> anyhow::Result<Counters> {
    let tun = TunDevice::open(&cfg.tun_name, true).with_context(|| {
        format!(
            "opening the TUN device {} (made by `rvs-rs setup`; is another decap running?)",
            cfg.tun_name
        )
    })?;
    let receivers = open_receivers(cfg, log)?;
    let names: Vec<String> = receivers.iter().map(Receiver::describe).collect();
    ready(&names);

    let mut fds: Vec<RawFd> = vec![signals.as_fd().as_raw_fd(), tun.as_fd().as_raw_fd()];
    fds.extend(receivers.iter().map(Receiver::fd));
    let mut counters = Counters::default();
    let mut buf = vec![0u8; BUF_LEN];
    let mut last_tun_error: Option<Instant> = None;
    let mut next_stats = Instant::now() + cfg.stats_interval;
    loop {
        let now = Instant::now();
        if cfg.verbose && now >= next_stats {
            log(&format!("counters: {counters}"));
            next_stats = now + cfg.stats_interval;
        }
        let wait = if cfg.verbose {
            next_stats
                .saturating_duration_since(now)
                .min(Duration::from_secs(1))
        } else {
            Duration::from_secs(1)
        };
        let readable = rvs_io::poll::wait_readable(&fds, wait).context("waiting for packets")?;
        if readable.first() == Some(&true) && signals.take().context("reading signals")?.is_some() {
            return Ok(counters);
        }
        if readable.get(1) == Some(&true) {
            // Whatever the kernel routes out of the TUN device (IPv6 housekeeping) is read
            // and discarded so that its queue never fills.
            for _ in 0..BATCH {
                match tun.recv(&mut buf) {
                    Ok(_) => counters.tun_out += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // The device was deleted under us (`EBADFD`): poll would report the
                    // descriptor forever, so stop rather than spin.
                    Err(e) => {
                        log(&format!("counters: {counters}"));
                        return Err(e).context(format!(
                            "the TUN device {} is gone (deleted by `ip link del`?)",
                            cfg.tun_name
                        ));
                    }
                }
            }
        }
        for (rx, _) in receivers
            .iter()
            .zip(readable.iter().skip(2))
            .filter(|(_, r)| **r)
        {
            for _ in 0..BATCH {
                let n = match recv(rx, &mut buf) {
                    Ok(Some(n)) => n,
                    Ok(None) => break,
                    Err(e) => {
                        log(&format!("{}: {e}", rx.describe()));
                        break;
                    }
                };
                if n > buf.len() {
                    counters.drop(DropReason::TooBig);
                    continue;
                }
                match handle(&mut buf, n, rx.kind(), &cfg.vips) {
                    Ok((range, source)) => {
                        let pkt = buf.get(range).unwrap_or(&[]);
                        match tun.send(pkt) {
                            Ok(_) => counters.delivered(source),
                            Err(e) => {
                                counters.drop(DropReason::TunWrite);
                                // One line per minute at most: this repeats per packet.
                                if last_tun_error
                                    .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
                                {
                                    log(&format!("writing to {}: {e}", cfg.tun_name));
                                    last_tun_error = Some(Instant::now());
                                }
                            }
                        }
                    }
                    Err(why) => counters.drop(why),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ipv4_datagrams_lose_their_outer_header() {
        let inner = rvs_testkit::PacketSpec::udp("198.18.1.1", 40000, "198.18.0.100", 9000)
            .payload(&[7; 32])
            .build()[14..]
            .to_vec();
        let mut buf = vec![0u8; 20];
        rvs_wire::emit_ipip_v4_outer(
            &mut buf,
            "198.18.1.1".parse().expect("ip"),
            "198.18.1.2".parse().expect("ip"),
            rvs_wire::IpProtocol::IpIp,
            64,
            0,
            false,
            1,
            inner.len(),
        )
        .expect("emit");
        buf.extend_from_slice(&inner);
        buf.extend_from_slice(&[0; 10]); // slack after the datagram
        let n = 20 + inner.len();
        let vips = vec!["198.18.0.100".parse().expect("ip")];
        let (range, source) = handle(&mut buf, n, RxKind::RawV4, &vips).expect("accepted");
        assert_eq!(source, Source::IpipOuterV4);
        assert_eq!(&buf[range], &inner[..]);
        // The same bytes as an IPv6 raw socket would return them (no outer header): the
        // outer IPv4 header is then the "inner" packet, addressed to a non-VIP.
        assert_eq!(
            handle(&mut buf, n, RxKind::RawV6(PROTO_IPIP), &vips),
            Err(DropReason::NotVip)
        );
        assert_eq!(
            handle(&mut buf, n, RxKind::RawV6(PROTO_IPV6), &vips),
            Err(DropReason::WrongVersion)
        );
        assert_eq!(
            handle(&mut buf, 10, RxKind::RawV4, &vips),
            Err(DropReason::OuterMalformed)
        );
        assert_eq!(
            handle(&mut buf, 40_000, RxKind::RawV4, &vips),
            Err(DropReason::TooBig)
        );
    }

    #[test]
    fn gue_datagrams_lose_their_gue_header() {
        let inner = rvs_testkit::PacketSpec::udp("198.18.1.1", 40000, "198.18.0.100", 9000)
            .payload(&[9; 32])
            .build()[14..]
            .to_vec();
        let mut buf = vec![0u8, 4, 0, 0];
        buf.extend_from_slice(&inner);
        let n = buf.len();
        let vips = vec!["198.18.0.100".parse().expect("ip")];
        let (range, source) = handle(&mut buf, n, RxKind::Gue, &vips).expect("accepted");
        assert_eq!((range, source), (4..n, Source::Gue));
        buf[1] = 41;
        assert_eq!(
            handle(&mut buf, n, RxKind::Gue, &vips),
            Err(DropReason::WrongVersion)
        );
    }
}
