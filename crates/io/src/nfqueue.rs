//! Firewall-mark services through NFQUEUE: a minimal `nfnetlink_queue` client and the
//! nftables rules that feed it.
//!
//! AF_PACKET (and AF_XDP) see frames *before* netfilter, so they never see the marks that
//! LVS users set with `iptables -t mangle ... -j MARK` or nftables `meta mark set` rules,
//! and that `ipvsadm -A -f MARK` services select on. For those services the daemon asks
//! netfilter to hand it the marked packets instead:
//!
//! - [`FwmarkQueue`] installs table `inet <table>` with a `prerouting` chain at priority
//!   -140 (after the mangle chains at -150 that set the marks) whose rule
//!   `meta mark { M1, M2, ... } queue num N bypass` queues exactly the packets that carry a
//!   service mark ([`fwmark_queue_ruleset`] renders it). Conntrack is left alone.
//!   `bypass` lets packets through when no program listens on the queue.
//! - [`NfQueue`] is the listener: a `NETLINK_NETFILTER` socket bound to queue `N` in copy
//!   mode `NFQNL_COPY_PACKET`, with `NFQA_CFG_F_FAIL_OPEN` when the kernel has it (a full
//!   queue then lets packets pass instead of dropping them). [`NfQueue::recv_batch`] hands
//!   each queued IP packet, with its mark, to a callback and sends the verdicts the
//!   callback returns: [`Verdict::Drop`] for a packet the daemon forwarded itself (so the
//!   kernel does not also deliver it), [`Verdict::Accept`] for one it does not want.
//!   Verdicts go back with `NFQNL_MSG_VERDICT_BATCH` (one message per run of equal
//!   verdicts), per packet otherwise, all in one `sendto(2)`.
//!
//! Kernels without the nftables `queue` expression (`CONFIG_NFT_QUEUE` unset) but with
//! `nft_compat` and the xtables `NFQUEUE` target get the same chain through nf_tables
//! netlink directly, with one rule per mark whose verdict is the xtables target
//! (`NFQUEUE --queue-num N --queue-bypass`); see [`QueueBackend`].
//!
//! Everything acts in the calling thread's network namespace (the guard remembers its
//! namespace for updates and removal). Nothing here panics on what the kernel sends:
//! messages are parsed as byte slices with bounds checks, and the ones that cannot be used
//! are counted in [`NfQueueStats::malformed`] (a packet whose id could still be read is
//! accepted, so it is not left in the queue).

use std::fmt::Write as _;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::netns::NetNsHandle;
use crate::nft::run_nft_script;
use crate::{invalid, os_err, syscall, syscall_size};

// Netlink.
const NLMSG_HDRLEN: usize = 16;
const NLA_HDRLEN: usize = 4;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `struct nfgenmsg`: family, version, resource id (big endian).
const NFGEN_LEN: usize = 4;

// nfnetlink_queue (include/uapi/linux/netfilter/nfnetlink_queue.h).
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_IFINDEX_INDEV: u16 = 5;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CAP_LEN: u16 = 13;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
const NFQA_CFG_F_FAIL_OPEN: u32 = 0x1;
/// `struct nfqnl_msg_packet_hdr` is packed: id (be32), hw_protocol (be16), hook (u8).
const PACKET_HDR_LEN: usize = 7;
/// The kernel's largest copy range (`0xffff - NLA_HDRLEN`).
pub const MAX_COPY_RANGE: u32 = 0xffff - NLA_HDRLEN as u32;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

// nf_tables (include/uapi/linux/netfilter/nf_tables.h), for the xtables-compat backend.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_MARK: u32 = 3;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_TARGET_NAME: u16 = 1;
const NFTA_TARGET_REV: u16 = 2;
const NFTA_TARGET_INFO: u16 = 3;
const NFT_REG_1: u32 = 1;
const NFPROTO_INET: u8 = 1;
const NF_INET_PRE_ROUTING: u32 = 0;
/// `NFQ_FLAG_BYPASS` of `struct xt_NFQ_info_v3`.
const NFQ_FLAG_BYPASS: u16 = 0x1;

/// Priority of the queueing chain: after the mangle hooks (-150) that set marks, before
/// conntrack-dependent NAT (-100) and filter (0).
pub const QUEUE_PRIORITY: i32 = -140;
/// Name of the queueing chain in the table.
const CHAIN: &str = "prerouting";
/// Receive buffer asked for (root can exceed `rmem_max` with `SO_RCVBUFFORCE`).
const RCVBUF: libc::c_int = 16 << 20;
/// Packets the kernel may hold for us before fail-open (or drops) start.
const QUEUE_MAXLEN: u32 = 4096;
/// Headroom above the copy range for the netlink headers and attributes of one packet.
const MSG_OVERHEAD: usize = 1024;
/// Most datagrams read by one `recv_batch`.
const MAX_BATCH: usize = 64;
/// Receive memory of one queue socket's batch buffer.
const BATCH_BYTES: usize = 1 << 20;
/// How long a configuration request or an nf_tables transaction may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// What the kernel does with a queued packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let it continue through the kernel (`NF_ACCEPT`): the daemon did not take it.
    Accept,
    /// Drop it (`NF_DROP`): the daemon handled (transmitted) it itself.
    Drop,
}

impl Verdict {
    const fn code(self) -> u32 {
        match self {
            Self::Accept => NF_ACCEPT,
            Self::Drop => NF_DROP,
        }
    }
}

/// One packet the kernel queued, as [`NfQueue::recv_batch`] hands it to its callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedPacket<'a> {
    /// The kernel's id of the packet in its queue (the verdict refers to it).
    pub id: u32,
    /// Its firewall mark (`skb->mark`), 0 when unmarked.
    pub mark: u32,
    /// Index of the interface it came in on, 0 when the kernel did not say.
    pub ifindex_in: u32,
    /// Its link-layer protocol (`skb->protocol`): 0x0800 IPv4, 0x86dd IPv6.
    pub hw_protocol: u16,
    /// The IP packet, from the IP header on: at most the queue's copy range.
    pub payload: &'a [u8],
    /// Length of the whole packet; larger than `payload.len()` when the copy range cut it,
    /// in which case the packet cannot be forwarded from the copy and should be accepted.
    pub orig_len: u32,
}

impl QueuedPacket<'_> {
    /// Whether `payload` is shorter than the packet (cut at the copy range).
    pub fn truncated(&self) -> bool {
        usize::try_from(self.orig_len).map_or(true, |l| l > self.payload.len())
    }
}

/// Counters of an [`NfQueue`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfQueueStats {
    /// Packets handed to the callback.
    pub received: u64,
    /// Packets given the verdict accept (by the callback, or because they were malformed).
    pub accepted: u64,
    /// Packets given the verdict drop.
    pub dropped: u64,
    /// Netlink messages that could not be used (bad lengths or attributes, a packet without
    /// id or payload, a datagram larger than the buffer, an unexpected message type).
    pub malformed: u64,
    /// Packets whose payload was cut at the copy range.
    pub truncated: u64,
    /// Times the socket's receive buffer overflowed (`ENOBUFS`): the kernel then dropped or
    /// (fail-open) accepted the packets it could not queue to us.
    pub overruns: u64,
    /// Errors the kernel returned for our verdict messages (e.g. an unknown packet id).
    pub verdict_errors: u64,
    /// Verdict messages sent (a batch verdict counts once).
    pub verdict_messages: u64,
}

/// A listener on one netfilter queue of the calling thread's network namespace.
///
/// Closing it (drop) unbinds the queue; packets still queued to it are then dropped by the
/// kernel, and later ones pass thanks to the rule's `bypass` flag.
#[derive(Debug)]
pub struct NfQueue {
    fd: OwnedFd,
    queue_num: u16,
    copy_range: u32,
    fail_open: bool,
    seq: u32,
    /// `batch` receive slots of `slot` bytes each.
    buf: Vec<u8>,
    slot: usize,
    batch: usize,
    /// Verdict messages being built.
    out: Vec<u8>,
    /// Verdicts of the current batch, in the order the packets were read.
    pending: Vec<(u32, Verdict)>,
    stats: NfQueueStats,
}

impl AsRawFd for NfQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl NfQueue {
    /// Bind queue `queue_num` of the calling thread's network namespace, copying at most
    /// `copy_range` bytes of each packet (0 or more than [`MAX_COPY_RANGE`] means the
    /// maximum), with fail-open when the kernel supports it ([`NfQueue::fail_open`]) and a
    /// 16 MiB receive buffer (less when not permitted).
    ///
    /// # Errors
    ///
    /// When the socket cannot be made (no `nfnetlink_queue` in the kernel:
    /// `EPROTONOSUPPORT`), or the kernel refuses the binding: `EPERM` when another socket
    /// holds the queue, `EPERM` too without `CAP_NET_ADMIN`.
    pub fn open(queue_num: u16, copy_range: u32) -> io::Result<Self> {
        let copy_range = if copy_range == 0 || copy_range > MAX_COPY_RANGE {
            MAX_COPY_RANGE
        } else {
            copy_range
        };
        let fd = nfnl_socket()?;
        set_rcvbuf(fd.as_raw_fd(), RCVBUF);
        // Netlink attributes: copy range + headers, rounded up to 4 bytes.
        let slot = align4(copy_range as usize + MSG_OVERHEAD);
        let batch = (BATCH_BYTES / slot).clamp(4, MAX_BATCH);
        let mut q = Self {
            fd,
            queue_num,
            copy_range,
            fail_open: false,
            seq: 0,
            buf: vec![0; slot * batch],
            slot,
            batch,
            out: Vec::with_capacity(MAX_BATCH * 32),
            pending: Vec::with_capacity(MAX_BATCH),
            stats: NfQueueStats::default(),
        };
        let target = format!("queue {queue_num}");
        match q.config(true) {
            Ok(()) => q.fail_open = true,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
                // A kernel without NFQA_CFG_FLAGS (or fail-open): bind without it.
                q.config(false)
                    .map_err(|e| os_err("NFQNL_CFG_CMD_BIND", &target, e))?;
            }
            Err(e) => {
                let target = if e.raw_os_error() == Some(libc::EPERM) {
                    format!("{target}; bound by another socket, or no CAP_NET_ADMIN")
                } else {
                    target
                };
                return Err(os_err("NFQNL_CFG_CMD_BIND", target, e));
            }
        }
        Ok(q)
    }

    /// The queue number.
    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// The copy range in effect (bytes of each packet copied to us).
    pub fn copy_range(&self) -> u32 {
        self.copy_range
    }

    /// Whether the kernel accepted `NFQA_CFG_F_FAIL_OPEN`: with it, packets that find the
    /// queue full pass through the kernel instead of being dropped.
    pub fn fail_open(&self) -> bool {
        self.fail_open
    }

    /// Counters since the queue was opened.
    pub fn stats(&self) -> NfQueueStats {
        self.stats
    }

    /// Bind with copy mode, queue length and (if `flags`) fail-open in one message, so that
    /// no packet is queued to us before the copy mode is set, and wait for the answer.
    fn config(&mut self, flags: bool) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut m = Vec::with_capacity(64);
        let start = begin_msg(
            &mut m,
            nfnl_type(NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            libc::AF_UNSPEC as u8,
            self.queue_num,
        );
        // struct nfqnl_msg_config_cmd: command, pad, pf (be16; unused by BIND).
        put_attr(&mut m, NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
        // struct nfqnl_msg_config_params (packed): copy_range (be32), copy_mode.
        let mut params = [0u8; 5];
        params[..4].copy_from_slice(&self.copy_range.to_be_bytes());
        params[4] = NFQNL_COPY_PACKET;
        put_attr(&mut m, NFQA_CFG_PARAMS, &params);
        put_attr(&mut m, NFQA_CFG_QUEUE_MAXLEN, &QUEUE_MAXLEN.to_be_bytes());
        if flags {
            put_attr(&mut m, NFQA_CFG_MASK, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
            put_attr(&mut m, NFQA_CFG_FLAGS, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
        }
        end_msg(&mut m, start);
        send_to_kernel(self.fd.as_raw_fd(), &m)?;
        self.wait_ack(seq)
    }

    /// Read until the kernel answers request `seq`. Packets that arrive meanwhile (the
    /// binding is already in effect) are accepted at once.
    fn wait_ack(&mut self, seq: u32) -> io::Result<()> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let fd = self.fd.as_raw_fd();
        let slot = self.slot;
        let mut answer = None;
        while answer.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer from nfnetlink_queue in time",
                ));
            }
            if !wait_readable(fd, left)? {
                continue;
            }
            let buf = self.buf.get_mut(..slot).unwrap_or_default();
            let Some((n, truncated)) = recv_one(fd, buf, &mut self.stats)? else {
                continue;
            };
            let data = self.buf.get(..n).unwrap_or_default();
            self.pending.clear();
            for m in messages(data, truncated) {
                match m {
                    Ok(m) if m.ty == NLMSG_ERROR && m.seq == seq => {
                        answer = Some(match nl_error(m.payload) {
                            Some(0) => Ok(()),
                            Some(e) => Err(io::Error::from_raw_os_error(e.saturating_neg())),
                            None => Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "malformed netlink error message",
                            )),
                        });
                    }
                    Ok(m) => {
                        let _ =
                            dispatch(&m, &mut self.stats, &mut self.pending, |_| Verdict::Accept);
                    }
                    Err(_) => self.stats.malformed += 1,
                }
            }
            self.flush_verdicts()?;
        }
        answer.unwrap_or(Ok(()))
    }

    /// Wait up to `timeout` for queued packets, call `f` for each of those available (at
    /// most one buffer's worth, up to 64), and send the verdicts `f` returns. Returns how
    /// many packets `f` saw (0 on timeout or interruption by a signal).
    ///
    /// `f` sees the packets in queue order. A packet is given a verdict exactly once; the
    /// ones `f` does not see (malformed messages with a readable id) are accepted.
    ///
    /// # Errors
    ///
    /// A failed `poll(2)`, `recvmmsg(2)` (other than `EAGAIN`, `EINTR`, `ENOBUFS`, which is
    /// counted in [`NfQueueStats::overruns`]) or `sendto(2)` of the verdicts.
    pub fn recv_batch(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(QueuedPacket<'_>) -> Verdict,
    ) -> io::Result<usize> {
        self.pending.clear();
        let fd = self.fd.as_raw_fd();
        if !wait_readable(fd, timeout)? {
            return Ok(0);
        }
        let mut lens = [(0usize, false); MAX_BATCH];
        let got = match recv_many(fd, &mut self.buf, self.slot, self.batch, &mut lens) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.stats.overruns += 1;
                return Ok(0);
            }
            Err(e) => {
                return Err(os_err(
                    "recvmmsg(netlink)",
                    format!("queue {}", self.queue_num),
                    e,
                ));
            }
        };
        let mut seen = 0;
        for (i, &(len, truncated)) in lens.iter().enumerate().take(got) {
            let start = i * self.slot;
            let data = self.buf.get(start..start + len).unwrap_or_default();
            for m in messages(data, truncated) {
                match m {
                    Ok(m) => seen += dispatch(&m, &mut self.stats, &mut self.pending, &mut f),
                    Err(_) => self.stats.malformed += 1,
                }
            }
        }
        self.flush_verdicts().map_err(|e| {
            os_err(
                "sendto(NFQNL verdict)",
                format!("queue {}", self.queue_num),
                e,
            )
        })?;
        Ok(seen)
    }

    /// Send the pending verdicts in one datagram.
    fn flush_verdicts(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.out.clear();
        let msgs = build_verdicts(&mut self.out, self.queue_num, &mut self.seq, &self.pending);
        for &(_, v) in &self.pending {
            match v {
                Verdict::Accept => self.stats.accepted += 1,
                Verdict::Drop => self.stats.dropped += 1,
            }
        }
        self.stats.verdict_messages += msgs as u64;
        self.pending.clear();
        send_to_kernel(self.fd.as_raw_fd(), &self.out)
    }
}

/// Handle one message read from the queue socket: a packet goes to `f` (its verdict is
/// recorded in `pending`), a packet that cannot be parsed but has an id is accepted, a
/// netlink error counts as a verdict error. Returns 1 when `f` was called.
fn dispatch(
    m: &NlMsg<'_>,
    stats: &mut NfQueueStats,
    pending: &mut Vec<(u32, Verdict)>,
    mut f: impl FnMut(QueuedPacket<'_>) -> Verdict,
) -> usize {
    match m.ty {
        t if t == nfnl_type(NFNL_SUBSYS_QUEUE, NFQNL_MSG_PACKET) => {
            match parse_packet(m.payload, m.truncated) {
                Ok(p) => {
                    stats.received += 1;
                    if p.truncated() {
                        stats.truncated += 1;
                    }
                    pending.push((p.id, f(p)));
                    1
                }
                Err(bad) => {
                    stats.malformed += 1;
                    if let Some(id) = bad.id {
                        pending.push((id, Verdict::Accept));
                    }
                    0
                }
            }
        }
        NLMSG_ERROR => {
            match nl_error(m.payload) {
                Some(0) => {}
                Some(_) => stats.verdict_errors += 1,
                None => stats.malformed += 1,
            }
            0
        }
        NLMSG_NOOP | NLMSG_DONE | NLMSG_OVERRUN => 0,
        _ => {
            stats.malformed += 1;
            0
        }
    }
}

/// Render the verdicts of `pending` (in read order) into `out` and return how many
/// messages that took. Runs of equal verdicts become one `NFQNL_MSG_VERDICT_BATCH` for the
/// run's last id: the kernel applies a batch verdict to every packet still queued up to
/// that id, which are exactly the run (the earlier ones got theirs before). That holds
/// only when the ids increase in read order (modulo 2^32, as the kernel compares them);
/// otherwise every packet gets its own `NFQNL_MSG_VERDICT`. (A packet whose message was
/// too damaged to give its id, which the kernel never sends, would be swept up by the next
/// batch verdict rather than left in the queue.)
fn build_verdicts(
    out: &mut Vec<u8>,
    queue: u16,
    seq: &mut u32,
    pending: &[(u32, Verdict)],
) -> usize {
    let increasing = pending
        .windows(2)
        .all(|w| matches!(w, [(a, _), (b, _)] if id_after(*b, *a)));
    let mut msgs = 0;
    let mut put = |out: &mut Vec<u8>, ty: u16, id: u32, v: Verdict| {
        *seq = seq.wrapping_add(1);
        let start = begin_msg(
            out,
            nfnl_type(NFNL_SUBSYS_QUEUE, ty),
            NLM_F_REQUEST,
            *seq,
            libc::AF_UNSPEC as u8,
            queue,
        );
        let mut hdr = [0u8; 8];
        hdr[..4].copy_from_slice(&v.code().to_be_bytes());
        hdr[4..].copy_from_slice(&id.to_be_bytes());
        put_attr(out, NFQA_VERDICT_HDR, &hdr);
        end_msg(out, start);
        msgs += 1;
    };
    if increasing {
        for (i, &(id, v)) in pending.iter().enumerate() {
            let run_ends = pending.get(i + 1).is_none_or(|&(_, next)| next != v);
            if run_ends {
                put(out, NFQNL_MSG_VERDICT_BATCH, id, v);
            }
        }
    } else {
        for &(id, v) in pending {
            put(out, NFQNL_MSG_VERDICT, id, v);
        }
    }
    msgs
}

/// The kernel's `nfq_id_after`: `id` comes after `max` in the wrapping id sequence.
fn id_after(id: u32, max: u32) -> bool {
    (id.wrapping_sub(max) as i32) > 0
}

// ---------------------------------------------------------------------------------------
// Parsing.

/// Why a netlink message or attribute could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Malformed {
    /// Fewer bytes than a header.
    Short,
    /// A length field smaller than its header or larger than what is there.
    Length,
    /// An attribute whose size is wrong for its type.
    AttrSize,
    /// A packet message without `NFQA_PACKET_HDR`.
    NoPacketHdr,
    /// A packet message without `NFQA_PAYLOAD`.
    NoPayload,
    /// The datagram was cut by the receive buffer.
    Truncated,
}

/// One netlink message. `truncated`: the datagram was cut by the receive buffer and this
/// message runs into the cut (its payload is what is left).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NlMsg<'a> {
    ty: u16,
    seq: u32,
    payload: &'a [u8],
    truncated: bool,
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn ne16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn ne32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The messages of one datagram. A bad header ends the walk with one `Err`; a message that
/// runs past the end of a `truncated` datagram is yielded with `truncated` set (so that a
/// packet id can still be read from it) and ends the walk.
fn messages(data: &[u8], truncated: bool) -> impl Iterator<Item = Result<NlMsg<'_>, Malformed>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cur = std::mem::take(&mut rest);
        let (Some(len), Some(ty), Some(seq)) = (ne32(cur, 0), ne16(cur, 4), ne32(cur, 8)) else {
            return Some(Err(if truncated {
                Malformed::Truncated
            } else {
                Malformed::Short
            }));
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len < NLMSG_HDRLEN {
            return Some(Err(Malformed::Length));
        }
        if len > cur.len() {
            if !truncated {
                return Some(Err(Malformed::Length));
            }
            return Some(Ok(NlMsg {
                ty,
                seq,
                payload: cur.get(NLMSG_HDRLEN..).unwrap_or_default(),
                truncated: true,
            }));
        }
        let payload = cur.get(NLMSG_HDRLEN..len).unwrap_or_default();
        rest = cur.get(align4(len).min(cur.len())..).unwrap_or_default();
        Some(Ok(NlMsg {
            ty,
            seq,
            payload,
            truncated: false,
        }))
    })
}

/// The attributes of `b`: (type without the flag bits, payload). Garbage (a length field
/// that lies, bytes too few for a header) yields one `Err` and ends the walk.
fn attrs(b: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), Malformed>> {
    let mut rest = b;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cur = std::mem::take(&mut rest);
        let (Some(len), Some(ty)) = (ne16(cur, 0), ne16(cur, 2)) else {
            return Some(Err(Malformed::Short));
        };
        let len = usize::from(len);
        if len < NLA_HDRLEN || len > cur.len() {
            return Some(Err(Malformed::Length));
        }
        let payload = cur.get(NLA_HDRLEN..len).unwrap_or_default();
        rest = cur.get(align4(len).min(cur.len())..).unwrap_or_default();
        Some(Ok((ty & NLA_TYPE_MASK, payload)))
    })
}

/// A packet message that could not be used, and its id when that could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BadPacket {
    why: Malformed,
    id: Option<u32>,
}

/// Parse an `NFQNL_MSG_PACKET` message (its payload after the netlink header).
fn parse_packet(p: &[u8], truncated: bool) -> Result<QueuedPacket<'_>, BadPacket> {
    let bad = |why, id| BadPacket { why, id };
    let short = if truncated {
        Malformed::Truncated
    } else {
        Malformed::Short
    };
    let body = p.get(NFGEN_LEN..).ok_or(bad(short, None))?;
    let mut hdr: Option<(u32, u16)> = None;
    let (mut mark, mut ifindex_in, mut payload, mut cap_len) = (0, 0, None, None);
    let mut err = None;
    for a in attrs(body) {
        let (ty, v) = match a {
            Ok(a) => a,
            Err(e) => {
                err = Some(e);
                break;
            }
        };
        let exact4 = || (v.len() == 4).then(|| be32(v, 0)).flatten();
        let ok = match ty {
            NFQA_PACKET_HDR => match (v.len() >= PACKET_HDR_LEN, be32(v, 0), be16(v, 4)) {
                (true, Some(id), Some(proto)) => {
                    hdr = Some((id, proto));
                    true
                }
                _ => false,
            },
            NFQA_MARK => exact4().map(|m| mark = m).is_some(),
            NFQA_IFINDEX_INDEV => exact4().map(|i| ifindex_in = i).is_some(),
            NFQA_CAP_LEN => exact4().map(|c| cap_len = Some(c)).is_some(),
            NFQA_PAYLOAD => {
                payload = Some(v);
                true
            }
            _ => true,
        };
        if !ok {
            err = Some(Malformed::AttrSize);
            break;
        }
    }
    let id = hdr.map(|(id, _)| id);
    if truncated {
        return Err(bad(Malformed::Truncated, id));
    }
    if let Some(e) = err {
        return Err(bad(e, id));
    }
    let Some((id, hw_protocol)) = hdr else {
        return Err(bad(Malformed::NoPacketHdr, None));
    };
    let Some(payload) = payload else {
        return Err(bad(Malformed::NoPayload, Some(id)));
    };
    let copied = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    Ok(QueuedPacket {
        id,
        mark,
        ifindex_in,
        hw_protocol,
        payload,
        orig_len: cap_len.map_or(copied, |c| c.max(copied)),
    })
}

/// The error code of an `NLMSG_ERROR` message (0 for an ack, `-errno` otherwise).
fn nl_error(payload: &[u8]) -> Option<i32> {
    ne32(payload, 0).map(|v| v as i32)
}

// ---------------------------------------------------------------------------------------
// Building messages.

const fn nfnl_type(subsys: u16, msg: u16) -> u16 {
    (subsys << 8) | msg
}

/// Start a netlink message with its `nfgenmsg`; returns its offset for [`end_msg`].
fn begin_msg(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    start
}

/// Write the length of the message started at `start`.
fn end_msg(buf: &mut [u8], start: usize) {
    let len = u32::try_from(buf.len().saturating_sub(start)).unwrap_or(u32::MAX);
    if let Some(l) = buf.get_mut(start..start + 4) {
        l.copy_from_slice(&len.to_ne_bytes());
    }
}

fn put_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = u16::try_from(NLA_HDRLEN + payload.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

fn put_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    put_attr(buf, ty, &v);
}

fn begin_nest(buf: &mut Vec<u8>, ty: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    start
}

fn end_nest(buf: &mut [u8], start: usize) {
    let len = u16::try_from(buf.len().saturating_sub(start)).unwrap_or(u16::MAX);
    if let Some(l) = buf.get_mut(start..start + 2) {
        l.copy_from_slice(&len.to_ne_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// Sockets.

/// A `NETLINK_NETFILTER` socket bound to a kernel-chosen port.
fn nfnl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call, no pointers.
    let raw = syscall(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    })
    .map_err(|e| os_err("socket(AF_NETLINK)", "NETLINK_NETFILTER", e))?;
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `sa` is a valid sockaddr_nl and the length is its size.
    syscall(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sa).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })
    .map_err(|e| os_err("bind(AF_NETLINK)", "NETLINK_NETFILTER", e))?;
    Ok(fd)
}

fn set_int_opt(fd: RawFd, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: `val` is a valid c_int and the length is its size.
    syscall(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&raw const val).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Ask for a receive buffer of `bytes`: beyond `rmem_max` when privileged, else as much as
/// allowed. Best effort: a small buffer only means earlier overruns.
fn set_rcvbuf(fd: RawFd, bytes: libc::c_int) {
    if set_int_opt(fd, libc::SO_RCVBUFFORCE, bytes).is_err() {
        let _ = set_int_opt(fd, libc::SO_RCVBUF, bytes);
    }
}

/// Same as [`set_rcvbuf`] for the send buffer (large nf_tables transactions).
fn set_sndbuf(fd: RawFd, bytes: libc::c_int) {
    if set_int_opt(fd, libc::SO_SNDBUFFORCE, bytes).is_err() {
        let _ = set_int_opt(fd, libc::SO_SNDBUF, bytes);
    }
}

fn send_to_kernel(fd: RawFd, msg: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_nl is plain old data; all-zero (port 0) addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    let mut tries = 0;
    loop {
        // SAFETY: `msg` is a valid buffer of its length; `kernel` a valid address of the
        // size given.
        let r = syscall_size(unsafe {
            libc::sendto(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const kernel).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        });
        match r {
            Ok(n) if n == msg.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "netlink send: {n} of {} bytes",
                    msg.len()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < 8 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Wait until `fd` is readable or `timeout` passes; `false` on timeout or `EINTR`.
fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: `p` is one valid, writable pollfd that lives across the call.
    match syscall(unsafe { libc::poll(&raw mut p, 1, ms) }) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(os_err("poll(2)", "netlink", e)),
    }
}

/// Read one datagram without waiting: `(bytes in buf, truncated)`, `None` when there is
/// nothing (or `EINTR`); an overrun (`ENOBUFS`) is counted and reads as nothing.
fn recv_one(
    fd: RawFd,
    buf: &mut [u8],
    stats: &mut NfQueueStats,
) -> io::Result<Option<(usize, bool)>> {
    // SAFETY: `buf` is a valid writable buffer of its length.
    let r = syscall_size(unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    });
    match r {
        Ok(n) => Ok(Some((n.min(buf.len()), n > buf.len()))),
        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
            stats.overruns += 1;
            Ok(None)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(os_err("recv(netlink)", "nfnetlink", e)),
    }
}

/// Read up to `batch` datagrams without waiting into the `slot`-sized parts of `buf`;
/// `lens[i]` gets (bytes, truncated). Returns how many were read (0 for `EAGAIN`/`EINTR`).
fn recv_many(
    fd: RawFd,
    buf: &mut [u8],
    slot: usize,
    batch: usize,
    lens: &mut [(usize, bool); MAX_BATCH],
) -> io::Result<usize> {
    let batch = batch.min(MAX_BATCH).min(buf.len() / slot.max(1));
    // SAFETY: iovec and mmsghdr are plain old data; all-zero is a valid value (null
    // pointers, zero lengths) and every used entry is filled in below.
    let mut iov: [libc::iovec; MAX_BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
    for (i, (v, chunk)) in iov.iter_mut().zip(buf.chunks_exact_mut(slot)).enumerate() {
        if i >= batch {
            break;
        }
        v.iov_base = chunk.as_mut_ptr().cast();
        v.iov_len = chunk.len();
    }
    for (h, v) in hdrs.iter_mut().zip(iov.iter_mut()).take(batch) {
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `batch` entries of `hdrs` each point to one iovec of `iov`, which
    // points to a distinct `slot`-byte part of `buf`; all outlive the call, and the kernel
    // writes at most `iov_len` bytes to each and fills `msg_len`/`msg_flags`.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            batch as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    match syscall(r) {
        Ok(n) => {
            let n = usize::try_from(n).unwrap_or(0).min(batch);
            for (l, h) in lens.iter_mut().zip(hdrs.iter()).take(n) {
                let len = usize::try_from(h.msg_len).unwrap_or(0).min(slot);
                *l = (len, h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0);
            }
            Ok(n)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// The nftables side.

fn check_table(table: &str) -> io::Result<()> {
    let ok = table.len() <= 64
        && table
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid nftables table name {table:?} (letters, digits, '_'; a letter first)"
        )))
    }
}

/// Sorted, deduplicated marks; 0 is refused (it is "no mark", never a service).
fn check_marks(marks: &[u32]) -> io::Result<Vec<u32>> {
    if marks.contains(&0) {
        return Err(invalid(
            "firewall mark 0 cannot select a service (it is the mark of unmarked packets)",
        ));
    }
    let mut m = marks.to_vec();
    m.sort_unstable();
    m.dedup();
    Ok(m)
}

/// Render the nft script that (re)creates table `inet <table>` with one chain,
/// `prerouting` (filter hook, priority -140, policy accept), that queues the packets
/// carrying one of `marks` to queue `queue_num` with `bypass`. Marks are sorted and
/// deduplicated; with none the chain is empty. As with the ingress-drop table, the script
/// creates and deletes the table first, so applying it replaces an older version in one
/// transaction.
///
/// # Errors
///
/// `InvalidInput` for a table name that is not an nft identifier or a mark 0.
pub fn fwmark_queue_ruleset(table: &str, queue_num: u16, marks: &[u32]) -> io::Result<String> {
    check_table(table)?;
    let marks = check_marks(marks)?;
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "table inet {table}");
    let _ = writeln!(out, "delete table inet {table}");
    let _ = writeln!(out, "table inet {table} {{");
    let _ = writeln!(out, "\tchain {CHAIN} {{");
    let _ = writeln!(
        out,
        "\t\ttype filter hook prerouting priority {QUEUE_PRIORITY}; policy accept;"
    );
    match marks.as_slice() {
        [] => {}
        [m] => {
            let _ = writeln!(out, "\t\tmeta mark {m} queue num {queue_num} bypass");
        }
        ms => {
            let list: Vec<String> = ms.iter().map(u32::to_string).collect();
            let _ = writeln!(
                out,
                "\t\tmeta mark {{ {} }} queue num {queue_num} bypass",
                list.join(", ")
            );
        }
    }
    let _ = writeln!(out, "\t}}");
    let _ = writeln!(out, "}}");
    Ok(out)
}

/// How a [`FwmarkQueue`] got its rules into the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueBackend {
    /// `nft -f -` with the script of [`fwmark_queue_ruleset`] (the nftables `queue`
    /// expression).
    Nft,
    /// nf_tables netlink with the xtables `NFQUEUE` target through `nft_compat`, for
    /// kernels without the `queue` expression (`CONFIG_NFT_QUEUE`). Same table, chain,
    /// priority and bypass; one rule per mark. `nft list ruleset` shows these rules as
    /// `xt target "NFQUEUE"`.
    XtCompat,
}

fn next_seq(s: &mut u32) -> u32 {
    *s = s.wrapping_add(1);
    *s
}

/// The nf_tables transaction of the [`QueueBackend::XtCompat`] backend: replace table
/// `inet <table>` by one holding the queueing chain, one rule per mark (`marks` checked).
fn compat_batch(seq: &mut u32, table: &str, queue_num: u16, marks: &[u32]) -> (Vec<u8>, usize) {
    let mut b = Vec::with_capacity(256 + marks.len() * 192);
    let mut inner = 0;
    let next = next_seq;
    let nft = |m| nfnl_type(NFNL_SUBSYS_NFTABLES, m);
    let s = next(seq);
    let st = begin_msg(
        &mut b,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        s,
        libc::AF_UNSPEC as u8,
        NFNL_SUBSYS_NFTABLES,
    );
    end_msg(&mut b, st);
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    // Create (if missing), delete, create: replaces an older version atomically.
    for (ty, flags) in [
        (NFT_MSG_NEWTABLE, ack | NLM_F_CREATE),
        (NFT_MSG_DELTABLE, ack),
        (NFT_MSG_NEWTABLE, ack | NLM_F_CREATE),
    ] {
        let st = begin_msg(&mut b, nft(ty), flags, next(seq), NFPROTO_INET, 0);
        put_str(&mut b, NFTA_TABLE_NAME, table);
        end_msg(&mut b, st);
        inner += 1;
    }
    let st = begin_msg(
        &mut b,
        nft(NFT_MSG_NEWCHAIN),
        ack | NLM_F_CREATE,
        next(seq),
        NFPROTO_INET,
        0,
    );
    put_str(&mut b, NFTA_CHAIN_TABLE, table);
    put_str(&mut b, NFTA_CHAIN_NAME, CHAIN);
    let hook = begin_nest(&mut b, NFTA_CHAIN_HOOK);
    put_attr(
        &mut b,
        NFTA_HOOK_HOOKNUM,
        &NF_INET_PRE_ROUTING.to_be_bytes(),
    );
    put_attr(&mut b, NFTA_HOOK_PRIORITY, &QUEUE_PRIORITY.to_be_bytes());
    end_nest(&mut b, hook);
    put_attr(&mut b, NFTA_CHAIN_POLICY, &NF_ACCEPT.to_be_bytes());
    put_str(&mut b, NFTA_CHAIN_TYPE, "filter");
    end_msg(&mut b, st);
    inner += 1;
    for &mark in marks {
        let st = begin_msg(
            &mut b,
            nft(NFT_MSG_NEWRULE),
            ack | NLM_F_CREATE | NLM_F_APPEND,
            next(seq),
            NFPROTO_INET,
            0,
        );
        put_str(&mut b, NFTA_RULE_TABLE, table);
        put_str(&mut b, NFTA_RULE_CHAIN, CHAIN);
        let exprs = begin_nest(&mut b, NFTA_RULE_EXPRESSIONS);
        // meta load mark => reg 1
        let e = begin_nest(&mut b, NFTA_LIST_ELEM);
        put_str(&mut b, NFTA_EXPR_NAME, "meta");
        let d = begin_nest(&mut b, NFTA_EXPR_DATA);
        put_attr(&mut b, NFTA_META_DREG, &NFT_REG_1.to_be_bytes());
        put_attr(&mut b, NFTA_META_KEY, &NFT_META_MARK.to_be_bytes());
        end_nest(&mut b, d);
        end_nest(&mut b, e);
        // cmp eq reg 1 MARK (the mark is a host-order integer in the register)
        let e = begin_nest(&mut b, NFTA_LIST_ELEM);
        put_str(&mut b, NFTA_EXPR_NAME, "cmp");
        let d = begin_nest(&mut b, NFTA_EXPR_DATA);
        put_attr(&mut b, NFTA_CMP_SREG, &NFT_REG_1.to_be_bytes());
        put_attr(&mut b, NFTA_CMP_OP, &NFT_CMP_EQ.to_be_bytes());
        let v = begin_nest(&mut b, NFTA_CMP_DATA);
        put_attr(&mut b, NFTA_DATA_VALUE, &mark.to_ne_bytes());
        end_nest(&mut b, v);
        end_nest(&mut b, d);
        end_nest(&mut b, e);
        // xtables NFQUEUE v3: struct xt_NFQ_info_v3 { queuenum, queues_total, flags }
        // (host order), padded to XT_ALIGN = 8.
        let e = begin_nest(&mut b, NFTA_LIST_ELEM);
        put_str(&mut b, NFTA_EXPR_NAME, "target");
        let d = begin_nest(&mut b, NFTA_EXPR_DATA);
        put_str(&mut b, NFTA_TARGET_NAME, "NFQUEUE");
        put_attr(&mut b, NFTA_TARGET_REV, &3u32.to_be_bytes());
        let mut info = [0u8; 8];
        info[0..2].copy_from_slice(&queue_num.to_ne_bytes());
        info[2..4].copy_from_slice(&1u16.to_ne_bytes());
        info[4..6].copy_from_slice(&NFQ_FLAG_BYPASS.to_ne_bytes());
        put_attr(&mut b, NFTA_TARGET_INFO, &info);
        end_nest(&mut b, d);
        end_nest(&mut b, e);
        end_nest(&mut b, exprs);
        end_msg(&mut b, st);
        inner += 1;
    }
    let s = next(seq);
    let st = begin_msg(
        &mut b,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        s,
        libc::AF_UNSPEC as u8,
        NFNL_SUBSYS_NFTABLES,
    );
    end_msg(&mut b, st);
    (b, inner)
}

/// The transaction that deletes table `inet <table>` if it exists.
fn delete_batch(seq: &mut u32, table: &str) -> (Vec<u8>, usize) {
    let mut b = Vec::with_capacity(128);
    let next = next_seq;
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    let st = begin_msg(
        &mut b,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        next(seq),
        libc::AF_UNSPEC as u8,
        NFNL_SUBSYS_NFTABLES,
    );
    end_msg(&mut b, st);
    for (ty, flags) in [
        (NFT_MSG_NEWTABLE, ack | NLM_F_CREATE),
        (NFT_MSG_DELTABLE, ack),
    ] {
        let st = begin_msg(
            &mut b,
            nfnl_type(NFNL_SUBSYS_NFTABLES, ty),
            flags,
            next(seq),
            NFPROTO_INET,
            0,
        );
        put_str(&mut b, NFTA_TABLE_NAME, table);
        end_msg(&mut b, st);
    }
    let st = begin_msg(
        &mut b,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        next(seq),
        libc::AF_UNSPEC as u8,
        NFNL_SUBSYS_NFTABLES,
    );
    end_msg(&mut b, st);
    (b, 2)
}

/// Send an nf_tables batch and wait for the `acks` answers of its inner messages; the
/// first error the kernel reports fails the call (the kernel then aborted the batch).
fn nft_transaction(batch: &[u8], acks: usize) -> io::Result<()> {
    let fd = nfnl_socket()?;
    let raw = fd.as_raw_fd();
    set_sndbuf(raw, 4 << 20);
    set_rcvbuf(raw, 4 << 20);
    send_to_kernel(raw, batch).map_err(|e| os_err("sendto(nf_tables batch)", "netlink", e))?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    let mut scratch = NfQueueStats::default();
    let mut answered = 0;
    while answered < acks {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nf_tables did not answer in time",
            ));
        }
        if !wait_readable(raw, left)? {
            continue;
        }
        let Some((n, truncated)) = recv_one(raw, &mut buf, &mut scratch)? else {
            continue;
        };
        for m in messages(buf.get(..n).unwrap_or_default(), truncated) {
            let Ok(m) = m else { break };
            if m.ty != NLMSG_ERROR {
                continue;
            }
            match nl_error(m.payload) {
                Some(0) => answered += 1,
                Some(e) => return Err(io::Error::from_raw_os_error(e.saturating_neg())),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed nf_tables answer",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Install the queueing table in the calling thread's namespace: with `nft`, else with the
/// xtables-compat transaction.
fn install(table: &str, queue_num: u16, marks: &[u32]) -> io::Result<QueueBackend> {
    let script = fwmark_queue_ruleset(table, queue_num, marks)?;
    let nft_err = match run_nft_script(&script) {
        Ok(()) => return Ok(QueueBackend::Nft),
        Err(e) => e,
    };
    let marks = check_marks(marks)?;
    let mut seq = 0;
    let (batch, acks) = compat_batch(&mut seq, table, queue_num, &marks);
    match nft_transaction(&batch, acks) {
        Ok(()) => Ok(QueueBackend::XtCompat),
        Err(compat_err) => Err(io::Error::new(
            nft_err.kind(),
            format!(
                "installing table inet {table} (queue {queue_num}): {nft_err}; \
                 xtables NFQUEUE fallback: {compat_err}"
            ),
        )),
    }
}

/// An installed fwmark queueing table (see the module docs), deleted on drop in the
/// network namespace it was installed in, whichever thread drops it.
#[derive(Debug)]
pub struct FwmarkQueue {
    table: String,
    queue_num: u16,
    ns: NetNsHandle,
    backend: QueueBackend,
    installed: bool,
}

impl FwmarkQueue {
    /// Install (or replace) table `inet <table>` in the calling thread's network namespace,
    /// queueing packets with one of `marks` to queue `queue_num`; see
    /// [`fwmark_queue_ruleset`]. Uses `nft`, or the xtables-compat backend when that fails
    /// ([`FwmarkQueue::backend`] tells which).
    ///
    /// # Errors
    ///
    /// `InvalidInput` from [`fwmark_queue_ruleset`]; otherwise when both backends fail
    /// (the message has both reasons).
    pub fn apply(table: &str, queue_num: u16, marks: &[u32]) -> io::Result<Self> {
        let ns = NetNsHandle::current()?;
        let backend = install(table, queue_num, marks)?;
        Ok(Self {
            table: table.to_owned(),
            queue_num,
            ns,
            backend,
            installed: true,
        })
    }

    /// Replace the mark list (atomically).
    ///
    /// # Errors
    ///
    /// As [`FwmarkQueue::apply`]; the old rules stay when this fails.
    pub fn update(&mut self, marks: &[u32]) -> io::Result<()> {
        let (table, q) = (&self.table, self.queue_num);
        self.backend = self.ns.run_in(|| install(table, q, marks))??;
        self.installed = true;
        Ok(())
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The queue the rules feed.
    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// How the rules were installed (by the last apply or update).
    pub fn backend(&self) -> QueueBackend {
        self.backend
    }

    /// Delete the table now and report the outcome (drop does the same silently).
    ///
    /// # Errors
    ///
    /// When deletion fails (the table is then considered gone anyway).
    pub fn remove(mut self) -> io::Result<()> {
        self.delete()
    }

    fn delete(&mut self) -> io::Result<()> {
        if !std::mem::replace(&mut self.installed, false) {
            return Ok(());
        }
        let table = &self.table;
        match self.backend {
            QueueBackend::Nft => {
                // Create-then-delete so that a table removed behind our back is no error.
                let script = format!("table inet {table}\ndelete table inet {table}\n");
                self.ns.run_in(|| run_nft_script(&script))?
            }
            QueueBackend::XtCompat => {
                let mut seq = 0;
                let (batch, acks) = delete_batch(&mut seq, table);
                self.ns.run_in(|| nft_transaction(&batch, acks))?
            }
        }
    }
}

impl Drop for FwmarkQueue {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("rvs-io: removing nftables table inet {}: {e}", self.table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `NFQNL_MSG_PACKET` message as the kernel builds it.
    fn packet_msg(id: u32, mark: Option<u32>, ifindex: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        let st = begin_msg(
            &mut m,
            nfnl_type(NFNL_SUBSYS_QUEUE, NFQNL_MSG_PACKET),
            0,
            0,
            libc::AF_INET as u8,
            3,
        );
        let mut hdr = [0u8; PACKET_HDR_LEN];
        hdr[..4].copy_from_slice(&id.to_be_bytes());
        hdr[4..6].copy_from_slice(&0x0800u16.to_be_bytes());
        hdr[6] = 0;
        put_attr(&mut m, NFQA_PACKET_HDR, &hdr);
        put_attr(&mut m, NFQA_IFINDEX_INDEV, &ifindex.to_be_bytes());
        if let Some(mark) = mark {
            put_attr(&mut m, NFQA_MARK, &mark.to_be_bytes());
        }
        put_attr(&mut m, 4, &[0; 16]); // NFQA_TIMESTAMP, ignored
        put_attr(&mut m, NFQA_PAYLOAD, payload);
        end_msg(&mut m, st);
        m
    }

    fn parse_one(d: &[u8]) -> Result<QueuedPacket<'_>, BadPacket> {
        let m = messages(d, false)
            .next()
            .expect("one message")
            .expect("valid header");
        parse_packet(m.payload, m.truncated)
    }

    #[test]
    fn parses_a_packet_message() {
        let d = packet_msg(42, Some(7), 5, b"\x45rest of the packet");
        let p = parse_one(&d).expect("valid packet");
        assert_eq!(
            p,
            QueuedPacket {
                id: 42,
                mark: 7,
                ifindex_in: 5,
                hw_protocol: 0x0800,
                payload: b"\x45rest of the packet",
                orig_len: 19,
            }
        );
        assert!(!p.truncated());
        // Unmarked: no NFQA_MARK, mark 0.
        let d = packet_msg(43, None, 5, b"x");
        assert_eq!(parse_one(&d).expect("valid").mark, 0);
    }

    #[test]
    fn cap_len_marks_a_cut_payload() {
        let mut d = Vec::new();
        let st = begin_msg(&mut d, nfnl_type(3, 0), 0, 0, 2, 0);
        put_attr(&mut d, NFQA_PACKET_HDR, &[0, 0, 0, 1, 0x86, 0xdd, 0]);
        put_attr(&mut d, NFQA_CAP_LEN, &1500u32.to_be_bytes());
        put_attr(&mut d, NFQA_PAYLOAD, b"abcd");
        end_msg(&mut d, st);
        let p = parse_one(&d).expect("valid");
        assert_eq!((p.hw_protocol, p.orig_len), (0x86dd, 1500));
        assert!(p.truncated());
    }

    #[test]
    fn bad_packets_keep_their_id_when_it_can_be_read() {
        // No payload attribute.
        let mut d = Vec::new();
        let st = begin_msg(&mut d, nfnl_type(3, 0), 0, 0, 2, 0);
        put_attr(&mut d, NFQA_PACKET_HDR, &[0, 0, 0, 9, 8, 0, 0]);
        end_msg(&mut d, st);
        assert_eq!(
            parse_one(&d),
            Err(BadPacket {
                why: Malformed::NoPayload,
                id: Some(9)
            })
        );
        // No packet header.
        let mut d = Vec::new();
        let st = begin_msg(&mut d, nfnl_type(3, 0), 0, 0, 2, 0);
        put_attr(&mut d, NFQA_PAYLOAD, b"x");
        end_msg(&mut d, st);
        assert_eq!(
            parse_one(&d),
            Err(BadPacket {
                why: Malformed::NoPacketHdr,
                id: None
            })
        );
        // Wrong attribute sizes.
        for (ty, v) in [
            (NFQA_MARK, &[1u8, 2][..]),
            (NFQA_IFINDEX_INDEV, &[1, 2, 3, 4, 5][..]),
            (NFQA_CAP_LEN, &[][..]),
        ] {
            let mut d = Vec::new();
            let st = begin_msg(&mut d, nfnl_type(3, 0), 0, 0, 2, 0);
            put_attr(&mut d, NFQA_PACKET_HDR, &[0, 0, 0, 10, 8, 0, 0]);
            put_attr(&mut d, ty, v);
            put_attr(&mut d, NFQA_PAYLOAD, b"x");
            end_msg(&mut d, st);
            assert_eq!(
                parse_one(&d),
                Err(BadPacket {
                    why: Malformed::AttrSize,
                    id: Some(10)
                }),
                "attr {ty}"
            );
        }
        // A packet header too short.
        let mut d = Vec::new();
        let st = begin_msg(&mut d, nfnl_type(3, 0), 0, 0, 2, 0);
        put_attr(&mut d, NFQA_PACKET_HDR, &[0, 0, 0, 10, 8, 0]);
        end_msg(&mut d, st);
        assert_eq!(parse_one(&d).map_err(|b| b.id), Err(None));
        // Nothing but the nfgenmsg, or less.
        assert_eq!(
            parse_packet(&[2, 0, 0, 0], false).map_err(|b| b.why),
            Err(Malformed::NoPacketHdr)
        );
        assert_eq!(
            parse_packet(&[2, 0], false).map_err(|b| b.why),
            Err(Malformed::Short)
        );
    }

    #[test]
    fn attribute_walk_stops_on_lying_lengths() {
        let mut b = Vec::new();
        put_attr(&mut b, 1, &[1, 2, 3]);
        put_attr(&mut b, 2, &[]);
        let got: Vec<_> = attrs(&b).collect();
        assert_eq!(got, vec![Ok((1, &[1u8, 2, 3][..])), Ok((2, &[][..]))]);
        assert_eq!(attrs(&[]).count(), 0);
        assert_eq!(
            attrs(&[4, 0]).collect::<Vec<_>>(),
            vec![Err(Malformed::Short)]
        );
        // Length 2 (< header), length past the end.
        assert_eq!(
            attrs(&[2, 0, 1, 0]).collect::<Vec<_>>(),
            vec![Err(Malformed::Length)]
        );
        assert_eq!(
            attrs(&[9, 0, 1, 0, 0, 0]).collect::<Vec<_>>(),
            vec![Err(Malformed::Length)]
        );
        // Flag bits are stripped from the type.
        let mut n = Vec::new();
        put_attr(&mut n, 5 | NLA_F_NESTED, &[]);
        assert_eq!(attrs(&n).next(), Some(Ok((5, &[][..]))));
    }

    #[test]
    fn message_walk_handles_truncation_and_garbage() {
        let mut d = packet_msg(1, Some(7), 2, b"first");
        d.extend(packet_msg(2, Some(7), 2, b"second"));
        let ids: Vec<u32> = messages(&d, false)
            .map(|m| {
                parse_packet(m.expect("msg").payload, false)
                    .expect("pkt")
                    .id
            })
            .collect();
        assert_eq!(ids, vec![1, 2]);
        // Every prefix, as a datagram cut by the buffer or as garbage: no panic, and a cut
        // one still yields the first id once its header is there.
        for cut in 0..d.len() {
            let part = &d[..cut];
            for m in messages(part, true).flatten() {
                let r = parse_packet(m.payload, m.truncated);
                if m.truncated {
                    let bad = r.expect_err("a cut message is never a packet");
                    assert_eq!(bad.why, Malformed::Truncated);
                    if cut >= NLMSG_HDRLEN + NFGEN_LEN + 12 && cut < d.len() / 2 {
                        assert_eq!(bad.id, Some(1), "cut at {cut}");
                    }
                }
            }
            let n = messages(part, false).count();
            assert!(n <= 2, "cut at {cut}");
        }
        // Every byte flipped: no panic.
        for pos in 0..d.len() {
            for v in [0u8, 0xff, 0x80, 3] {
                let mut c = d.clone();
                c[pos] = v;
                for m in messages(&c, false).flatten() {
                    let _ = parse_packet(m.payload, m.truncated);
                }
            }
        }
        // Header lengths that lie.
        let mut bad = d.clone();
        bad[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(messages(&bad, false).next(), Some(Err(Malformed::Length)));
        bad[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(messages(&bad, false).next(), Some(Err(Malformed::Length)));
        assert_eq!(messages(&d[..5], false).next(), Some(Err(Malformed::Short)));
    }

    #[test]
    fn dispatch_counts_and_accepts_what_it_cannot_use() {
        let mut stats = NfQueueStats::default();
        let mut pending = Vec::new();
        let mut d = packet_msg(5, Some(7), 2, b"ok");
        // A packet message without payload: accepted, not shown.
        let st = begin_msg(&mut d, nfnl_type(3, 0), 0, 0, 2, 0);
        put_attr(&mut d, NFQA_PACKET_HDR, &[0, 0, 0, 6, 8, 0, 0]);
        end_msg(&mut d, st);
        // An error answer to a verdict, an ack, an unknown type.
        let st = begin_msg(&mut d, NLMSG_ERROR, 0, 1, 0, 0);
        d.truncate(st + NLMSG_HDRLEN);
        d.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        end_msg(&mut d, st);
        let st = begin_msg(&mut d, NLMSG_ERROR, 0, 1, 0, 0);
        d.truncate(st + NLMSG_HDRLEN);
        d.extend_from_slice(&0i32.to_ne_bytes());
        end_msg(&mut d, st);
        let st = begin_msg(&mut d, 0x0999, 0, 1, 0, 0);
        end_msg(&mut d, st);
        let mut shown = Vec::new();
        let mut n = 0;
        for m in messages(&d, false) {
            n += dispatch(&m.expect("msg"), &mut stats, &mut pending, |p| {
                shown.push((p.id, p.payload.to_vec()));
                Verdict::Drop
            });
        }
        assert_eq!(n, 1);
        assert_eq!(shown, vec![(5, b"ok".to_vec())]);
        assert_eq!(pending, vec![(5, Verdict::Drop), (6, Verdict::Accept)]);
        assert_eq!(
            (stats.received, stats.malformed, stats.verdict_errors),
            (1, 2, 1)
        );
    }

    /// Decode verdict messages: (type, verdict code, id, queue).
    fn decode_verdicts(out: &[u8]) -> Vec<(u16, u32, u32, u16)> {
        messages(out, false)
            .map(|m| {
                let m = m.expect("msg");
                let queue = be16(m.payload, 2).expect("res_id");
                let (ty, v) = attrs(&m.payload[NFGEN_LEN..])
                    .next()
                    .expect("attr")
                    .expect("valid attr");
                assert_eq!(ty, NFQA_VERDICT_HDR);
                (
                    m.ty,
                    be32(v, 0).expect("verdict"),
                    be32(v, 4).expect("id"),
                    queue,
                )
            })
            .collect()
    }

    #[test]
    fn verdicts_are_batched_by_runs() {
        let batch = nfnl_type(3, NFQNL_MSG_VERDICT_BATCH);
        let single = nfnl_type(3, NFQNL_MSG_VERDICT);
        let mut seq = 0;
        let mut out = Vec::new();
        let p = [
            (10, Verdict::Drop),
            (11, Verdict::Drop),
            (12, Verdict::Accept),
            (14, Verdict::Drop),
        ];
        assert_eq!(build_verdicts(&mut out, 3, &mut seq, &p), 3);
        assert_eq!(
            decode_verdicts(&out),
            vec![
                (batch, NF_DROP, 11, 3),
                (batch, NF_ACCEPT, 12, 3),
                (batch, NF_DROP, 14, 3)
            ]
        );
        // Ids that wrap around still increase.
        out.clear();
        let p = [(u32::MAX, Verdict::Accept), (1, Verdict::Accept)];
        assert_eq!(build_verdicts(&mut out, 3, &mut seq, &p), 1);
        assert_eq!(decode_verdicts(&out), vec![(batch, NF_ACCEPT, 1, 3)]);
        // Out of order: one verdict per packet.
        out.clear();
        let p = [(5, Verdict::Accept), (4, Verdict::Accept)];
        assert_eq!(build_verdicts(&mut out, 9, &mut seq, &p), 2);
        assert_eq!(
            decode_verdicts(&out),
            vec![(single, NF_ACCEPT, 5, 9), (single, NF_ACCEPT, 4, 9)]
        );
        out.clear();
        assert_eq!(build_verdicts(&mut out, 9, &mut seq, &[]), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn renders_the_queue_ruleset() {
        let text = fwmark_queue_ruleset("rvs_fwm", 3, &[7, 1, 7, 4294967295]).expect("valid");
        let expected = "\
table inet rvs_fwm
delete table inet rvs_fwm
table inet rvs_fwm {
\tchain prerouting {
\t\ttype filter hook prerouting priority -140; policy accept;
\t\tmeta mark { 1, 7, 4294967295 } queue num 3 bypass
\t}
}
";
        assert_eq!(text, expected);
        let one = fwmark_queue_ruleset("t", 65535, &[7]).expect("valid");
        assert!(
            one.contains("\t\tmeta mark 7 queue num 65535 bypass\n"),
            "{one}"
        );
        let none = fwmark_queue_ruleset("t", 0, &[]).expect("valid");
        assert!(!none.contains("queue"), "{none}");
        assert!(none.contains("chain prerouting {"), "{none}");
    }

    #[test]
    fn ruleset_rejects_bad_names_and_mark_zero() {
        for t in ["", "1abc", "a b", "a;b", "a\nb", "rvs}"] {
            assert!(fwmark_queue_ruleset(t, 0, &[1]).is_err(), "table {t:?}");
        }
        let e = fwmark_queue_ruleset("t", 0, &[3, 0]).expect_err("mark 0");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn compat_batch_is_well_formed() {
        let mut seq = 100;
        let (b, acks) = compat_batch(&mut seq, "rvs_fwm", 3, &[1, 7]);
        assert_eq!(acks, 6);
        let msgs: Vec<NlMsg<'_>> = messages(&b, false).map(|m| m.expect("msg")).collect();
        let types: Vec<u16> = msgs.iter().map(|m| m.ty).collect();
        let nft = |t| nfnl_type(NFNL_SUBSYS_NFTABLES, t);
        assert_eq!(
            types,
            vec![
                NFNL_MSG_BATCH_BEGIN,
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_DELTABLE),
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_NEWCHAIN),
                nft(NFT_MSG_NEWRULE),
                nft(NFT_MSG_NEWRULE),
                NFNL_MSG_BATCH_END
            ]
        );
        let seqs: Vec<u32> = msgs.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (101..=108).collect::<Vec<u32>>());
        // Every attribute tree parses to its end, nested ones included.
        fn walk(b: &[u8]) -> usize {
            let mut rest = b;
            let mut n = 0;
            while !rest.is_empty() {
                let len = usize::from(ne16(rest, 0).expect("attr len"));
                let ty = ne16(rest, 2).expect("attr type");
                assert!(len >= NLA_HDRLEN && len <= rest.len(), "attr length {len}");
                if ty & NLA_F_NESTED != 0 {
                    n += walk(&rest[NLA_HDRLEN..len]);
                }
                n += 1;
                rest = &rest[align4(len).min(rest.len())..];
            }
            n
        }
        let counts: Vec<usize> = msgs.iter().map(|m| walk(&m.payload[NFGEN_LEN..])).collect();
        // table; table; table; chain (table, name, hook{2}, policy, type); rules.
        assert_eq!(&counts[1..5], &[1, 1, 1, 7]);
        assert_eq!(counts[5], counts[6]);
        // The last rule's mark and queue number are in it.
        let rule = msgs[6].payload;
        let find = |needle: &[u8]| rule.windows(needle.len()).any(|w| w == needle);
        assert!(find(&7u32.to_ne_bytes()));
        assert!(find(b"NFQUEUE\0"));
        assert!(find(
            &[3u16.to_ne_bytes(), 1u16.to_ne_bytes(), 1u16.to_ne_bytes()].concat()
        ));
    }
}

/// Against the real kernel, in namespaces the tests create (skipped when not root).
#[cfg(test)]
mod lab {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::netns::{Pair, skip_reason};
    use crate::nft::nft_unavailable;
    use crate::packet::ifindex;

    const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    const QUEUE: u16 = 3;
    const MARK: u32 = 7;

    /// Why these tests cannot run here, or `None`.
    fn skip() -> Option<String> {
        if let Some(why) = skip_reason() {
            return Some(why);
        }
        if let Some(why) = nft_unavailable() {
            return Some(why);
        }
        let proc = std::path::Path::new("/proc/net/netfilter/nfnetlink_queue");
        if !proc.exists() {
            // Loadable as a module on distribution kernels; absent modprobe is fine.
            let _ = std::process::Command::new("modprobe")
                .arg("nfnetlink_queue")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        if !proc.exists() {
            return Some("nfnetlink_queue is not in this kernel (modprobe failed)".into());
        }
        None
    }

    /// The UDP destination port and payload of an IPv4 or IPv6 packet without options.
    fn udp_of(ip: &[u8]) -> Option<(IpAddr, u16, &[u8])> {
        let (dst, l4) = match ip.first()? >> 4 {
            4 => {
                let ihl = usize::from(ip.first()? & 0x0f) * 4;
                if *ip.get(9)? != 17 {
                    return None;
                }
                let tot = usize::from(be16(ip, 2)?);
                let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
                (IpAddr::from(dst), ip.get(ihl..tot)?)
            }
            6 => {
                if *ip.get(6)? != 17 {
                    return None;
                }
                let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
                (
                    IpAddr::from(dst),
                    ip.get(40..40 + usize::from(be16(ip, 4)?))?,
                )
            }
            _ => return None,
        };
        Some((dst, be16(l4, 2)?, l4.get(8..)?))
    }

    /// A UDP socket in `b` bound to `addr`, with a short read timeout.
    fn listener(lab: &Pair, addr: SocketAddr) -> UdpSocket {
        lab.b
            .run(|| {
                let u = UdpSocket::bind(addr).expect("bind in b");
                u.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("read timeout");
                u
            })
            .expect("entering ns b")
    }

    /// Datagrams that arrive on `u` within `wait`, stopping early once there are `n`.
    fn drain(u: &UdpSocket, n: usize, wait: Duration) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + wait;
        while got.len() < n && Instant::now() < deadline {
            if let Ok(n) = u.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        got
    }

    /// Send each payload from `a` to `to` (one socket, so one source port).
    fn send_from_a(lab: &Pair, from: IpAddr, to: SocketAddr, payloads: &[String]) {
        lab.a
            .run(|| {
                let u = UdpSocket::bind((from, 0)).expect("bind in a");
                for p in payloads {
                    u.send_to(p.as_bytes(), to).expect("send_to");
                }
            })
            .expect("entering ns a");
    }

    /// Run `recv_batch` until `n` packets came or 5 s passed, answering `verdict`; returns
    /// (mark, ifindex, hw protocol, destination, port, UDP payload) of each.
    fn collect(
        q: &mut NfQueue,
        n: usize,
        verdict: Verdict,
    ) -> Vec<(u32, u32, u16, IpAddr, u16, Vec<u8>)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < n && Instant::now() < deadline {
            q.recv_batch(Duration::from_millis(100), |p| {
                assert!(!p.truncated(), "a small datagram fits the copy range");
                let (dst, port, data) = udp_of(p.payload).expect("a UDP packet");
                got.push((
                    p.mark,
                    p.ifindex_in,
                    p.hw_protocol,
                    dst,
                    port,
                    data.to_vec(),
                ));
                verdict
            })
            .expect("recv_batch");
        }
        got
    }

    fn texts(v: &[Vec<u8>]) -> Vec<String> {
        v.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn marked_packets_come_through_the_queue_and_obey_the_verdict() {
        if let Some(why) = skip() {
            eprintln!("skipped: {why}");
            return;
        }
        let lab = Pair::new("nfq").expect("creating the namespace pair");
        lab.b
            .ip(&["addr", "add", "198.18.0.10/32", "dev", Pair::B_IF])
            .expect("VIP v4");
        lab.b
            .ip(&[
                "addr",
                "add",
                "2001:db8::10/128",
                "dev",
                Pair::B_IF,
                "nodad",
            ])
            .expect("VIP v6");
        // The user's marking rule, as a mangle-priority chain.
        let mark_rules = format!(
            "table inet rvs_test_mark {{
\tchain pre {{
\t\ttype filter hook prerouting priority -150; policy accept;
\t\tip daddr {VIP4} udp dport 9000 meta mark set {MARK}
\t\tip6 daddr {VIP6} udp dport 9000 meta mark set {MARK}
\t}}
}}
"
        );
        lab.b
            .run(|| run_nft_script(&mark_rules))
            .expect("entering ns b")
            .expect("marking rules");
        let guard = lab
            .b
            .run(|| FwmarkQueue::apply("rvs_fwm", QUEUE, &[MARK, 99]))
            .expect("entering ns b")
            .expect("installing the queue table");
        eprintln!("queue table installed with {:?}", guard.backend());
        let b_ifindex = lab
            .b
            .run(|| ifindex(Pair::B_IF))
            .expect("entering ns b")
            .expect("ifindex of veth-b");

        for (vip, src) in [
            (IpAddr::V4(VIP4), IpAddr::V4(Pair::A_V4)),
            (IpAddr::V6(VIP6), IpAddr::V6(Pair::A_V6)),
        ] {
            let fam = if vip.is_ipv4() { "v4" } else { "v6" };
            let marked = listener(&lab, SocketAddr::new(vip, 9000));
            let plain = listener(&lab, SocketAddr::new(vip, 9001));
            let msgs = |tag: &str, n: usize| -> Vec<String> {
                (0..n).map(|i| format!("rvs-nfq-{fam}-{tag}-{i}")).collect()
            };

            // Nobody listens on the queue yet: `bypass` lets marked packets through.
            let early = msgs("bypass", 1);
            send_from_a(&lab, src, SocketAddr::new(vip, 9000), &early);
            assert_eq!(
                texts(&drain(&marked, early.len(), Duration::from_secs(2))),
                early,
                "{fam}: bypass without a listener"
            );

            let mut q = lab
                .b
                .run(|| NfQueue::open(QUEUE, 0))
                .expect("entering ns b")
                .expect("binding the queue");
            assert_eq!(q.copy_range(), MAX_COPY_RANGE);

            // Drop: the marked datagrams come through the queue, intact, and never reach
            // their socket; the unmarked ones reach theirs without being queued.
            let dropped = msgs("drop", 3);
            let passed = msgs("plain", 3);
            send_from_a(&lab, src, SocketAddr::new(vip, 9000), &dropped);
            send_from_a(&lab, src, SocketAddr::new(vip, 9001), &passed);
            let got = collect(&mut q, dropped.len(), Verdict::Drop);
            let proto = if vip.is_ipv4() { 0x0800 } else { 0x86dd };
            let want: Vec<_> = dropped
                .iter()
                .map(|p| (MARK, b_ifindex, proto, vip, 9000, p.clone().into_bytes()))
                .collect();
            assert_eq!(got, want, "{fam}: queued packets");
            assert_eq!(
                texts(&drain(&plain, passed.len(), Duration::from_secs(2))),
                passed,
                "{fam}: unmarked datagrams reach their socket"
            );
            assert!(
                drain(&marked, 1, Duration::from_millis(300)).is_empty(),
                "{fam}: Verdict::Drop keeps the datagrams from the socket"
            );
            // Nothing else was queued (the :9001 datagrams in particular).
            let extra = collect(&mut q, 1, Verdict::Accept);
            assert!(
                extra.is_empty(),
                "{fam}: unexpected queued packets {extra:?}"
            );

            // Accept: the datagram goes on to its socket.
            let accepted = msgs("accept", 1);
            send_from_a(&lab, src, SocketAddr::new(vip, 9000), &accepted);
            let got = collect(&mut q, 1, Verdict::Accept);
            assert_eq!(got.len(), 1, "{fam}: accepted packet queued");
            assert_eq!(got[0].5, accepted[0].as_bytes());
            assert_eq!(
                texts(&drain(&marked, accepted.len(), Duration::from_secs(2))),
                accepted,
                "{fam}: Verdict::Accept delivers"
            );

            let st = q.stats();
            assert_eq!(
                (st.received, st.dropped, st.accepted, st.malformed),
                (4, 3, 1, 0),
                "{fam}: {st:?}"
            );
            assert_eq!(st.verdict_errors, 0, "{fam}: {st:?}");
            assert!(st.verdict_messages <= st.received, "{fam}: {st:?}");
            assert!(q.fail_open(), "{fam}: this kernel has fail-open");

            // Closing the queue unbinds it: bypass again.
            drop(q);
            let late = msgs("late", 1);
            send_from_a(&lab, src, SocketAddr::new(vip, 9000), &late);
            assert_eq!(
                texts(&drain(&marked, late.len(), Duration::from_secs(2))),
                late,
                "{fam}: bypass after close"
            );
        }
        guard.remove().expect("removing the queue table");
        let listing = lab
            .b
            .exec("nft", &["list", "tables"])
            .expect("nft list tables");
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        assert!(!listing.contains("rvs_fwm"), "{listing}");
    }

    #[test]
    fn a_short_copy_range_cuts_the_copy_not_the_packet() {
        if let Some(why) = skip() {
            eprintln!("skipped: {why}");
            return;
        }
        let lab = Pair::new("nfq3").expect("creating the namespace pair");
        lab.b
            .ip(&["addr", "add", "198.18.0.10/32", "dev", Pair::B_IF])
            .expect("VIP v4");
        let mark_rule = format!(
            "table ip rvs_test_mark {{
\tchain pre {{
\t\ttype filter hook prerouting priority -150; policy accept;
\t\tip daddr {VIP4} meta mark set {MARK}
\t}}
}}
"
        );
        let (_guard, mut q) = lab
            .b
            .run(|| {
                run_nft_script(&mark_rule).expect("marking rule");
                let g = FwmarkQueue::apply("rvs_fwm", QUEUE, &[MARK]).expect("queue table");
                // IPv4 and UDP headers only.
                (g, NfQueue::open(QUEUE, 28).expect("binding the queue"))
            })
            .expect("entering ns b");
        let sock = listener(&lab, SocketAddr::new(IpAddr::V4(VIP4), 9000));
        let body = "rvs-nfq-cut-".repeat(20);
        send_from_a(
            &lab,
            IpAddr::V4(Pair::A_V4),
            SocketAddr::new(IpAddr::V4(VIP4), 9000),
            std::slice::from_ref(&body),
        );
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.is_empty() && Instant::now() < deadline {
            q.recv_batch(Duration::from_millis(100), |p| {
                seen.push((p.payload.len(), p.orig_len, p.truncated(), p.mark));
                Verdict::Accept
            })
            .expect("recv_batch");
        }
        assert_eq!(seen, vec![(28, 28 + body.len() as u32, true, MARK)]);
        assert_eq!(q.stats().truncated, 1);
        // Accept reinjects the kernel's whole packet, not our cut copy.
        assert_eq!(texts(&drain(&sock, 1, Duration::from_secs(2))), vec![body]);
    }

    #[test]
    fn a_second_listener_is_refused_and_update_replaces_the_marks() {
        if let Some(why) = skip() {
            eprintln!("skipped: {why}");
            return;
        }
        let lab = Pair::new("nfq2").expect("creating the namespace pair");
        lab.b
            .run(|| {
                let _q = NfQueue::open(5, 128).expect("first listener");
                let e = NfQueue::open(5, 128).expect_err("second listener");
                assert_eq!(e.raw_os_error(), None, "wrapped: {e}");
                let inner = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<crate::OsError>())
                    .expect("OsError");
                assert_eq!(inner.cause.raw_os_error(), Some(libc::EPERM), "{e}");
                assert_eq!(_q.copy_range(), 128);

                let mut g = FwmarkQueue::apply("rvs_upd", 5, &[1]).expect("apply");
                g.update(&[2, 3]).expect("update");
                let out = std::process::Command::new("nft")
                    .args(["list", "table", "inet", "rvs_upd"])
                    .output()
                    .expect("nft list");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(text.contains("priority"), "{text}");
                match g.backend() {
                    QueueBackend::Nft => {
                        assert!(text.contains("2, 3"), "{text}");
                    }
                    QueueBackend::XtCompat => {
                        // nft 1.0 prints the xtables target as nothing (or `xt target`).
                        assert!(text.contains("meta mark 0x00000002"), "{text}");
                        assert!(text.contains("meta mark 0x00000003"), "{text}");
                        assert!(!text.contains("meta mark 0x00000001"), "{text}");
                        // The nft script is still valid text: what failed is the kernel
                        // (no `queue` expression), not nft's parser.
                        let script = fwmark_queue_ruleset("rvs_upd", 5, &[2, 3]).expect("valid");
                        let e = run_nft_script(&script).expect_err("no queue expression");
                        assert!(!e.to_string().contains("syntax error"), "{e}");
                        assert!(e.to_string().contains("Could not process rule"), "{e}");
                    }
                }
                g.remove().expect("remove");
            })
            .expect("entering ns b");
    }
}
