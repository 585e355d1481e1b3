//! Per-protocol connection states, the IPVS TCP transition tables and the state timeouts.
//!
//! The TCP tables are IPVS's (`ip_vs_proto_tcp.c`, spec 5.3): three directions (INPUT for
//! client→RS, OUTPUT for RS→client seen only with NAT, INPUT_ONLY for connections whose replies
//! bypass the director) and, under the `secure_tcp` defence, the stricter variant.

use crate::time::Duration;

/// TCP states, numbered as IPVS numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// No state yet (2 s).
    None = 0,
    /// Three-way handshake done (900 s).
    Established = 1,
    /// SYN seen from the real server side (120 s).
    SynSent = 2,
    /// SYN seen from the client (60 s).
    SynRecv = 3,
    /// A FIN was seen (120 s).
    FinWait = 4,
    /// Both FINs seen (120 s).
    TimeWait = 5,
    /// Reset or closed (10 s).
    Close = 6,
    /// Client closed first (60 s).
    CloseWait = 7,
    /// Waiting for the last ACK (30 s).
    LastAck = 8,
    /// Listen (120 s).
    Listen = 9,
    /// SYN+ACK seen (120 s).
    SynAck = 10,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;

impl TcpState {
    /// All states in index order.
    pub const ALL: [Self; TCP_STATES] = [
        Self::None,
        Self::Established,
        Self::SynSent,
        Self::SynRecv,
        Self::FinWait,
        Self::TimeWait,
        Self::Close,
        Self::CloseWait,
        Self::LastAck,
        Self::Listen,
        Self::SynAck,
    ];

    /// From the IPVS state index; out-of-range values map to `None`.
    pub const fn from_index(i: u8) -> Self {
        if (i as usize) < TCP_STATES {
            Self::ALL[i as usize]
        } else {
            Self::None
        }
    }

    /// The name `ipvsadm -L -c` and `/proc/net/ip_vs_conn` print.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait => "FIN_WAIT",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::SynAck => "SYNACK",
        }
    }

    /// Whether a connection in this state counts in ActiveConn (spec 5.6).
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            Self::Established | Self::SynSent | Self::SynRecv | Self::SynAck
        )
    }

    /// Half-open states: the cheapest entries to evict under memory pressure (IPVS
    /// `drop_entry` drops SYN_RECV and SYNACK first).
    pub const fn is_half_open(self) -> bool {
        matches!(self, Self::SynRecv | Self::SynAck)
    }
}

/// Which transition table a TCP segment uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server, connection also sees replies (NAT).
    Input = 0,
    /// Real server to client (NAT only).
    Output = 1,
    /// Client to real server, replies bypass the director (DR, TUN).
    InputOnly = 2,
}

/// TCP event derived from the flags, first match wins: RST, SYN, FIN, ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// SYN (also SYN+ACK).
    Syn = 0,
    /// FIN.
    Fin = 1,
    /// ACK only.
    Ack = 2,
    /// RST.
    Rst = 3,
}

impl TcpEvent {
    /// Map TCP flags (the raw flag byte) to an event; `None` when no flag of interest is
    /// set (IPVS then moves the connection to CLOSE).
    pub const fn from_flags(flags: u8) -> Option<Self> {
        const FIN: u8 = 0x01;
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        const ACK: u8 = 0x10;
        if flags & RST != 0 {
            Some(Self::Rst)
        } else if flags & SYN != 0 {
            Some(Self::Syn)
        } else if flags & FIN != 0 {
            Some(Self::Fin)
        } else if flags & ACK != 0 {
            Some(Self::Ack)
        } else {
            None
        }
    }
}

use TcpState as S;
#[expect(
    dead_code,
    reason = "kept so the tables read with the spec's column names"
)]
const NO: S = S::None;
const ES: S = S::Established;
const SS: S = S::SynSent;
const SR: S = S::SynRecv;
const FW: S = S::FinWait;
const TW: S = S::TimeWait;
const CL: S = S::Close;
const CW: S = S::CloseWait;
const LA: S = S::LastAck;
const LI: S = S::Listen;
const SA: S = S::SynAck;

type Row = [TcpState; TCP_STATES];

/// `[direction][event][current state]`, columns NO ES SS SR FW TW CL CW LA LI SA.
const NORMAL: [[Row; 4]; 3] = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The `secure_tcp` tables (spec 5.3): only the listed cells differ from [`NORMAL`].
const SECURE: [[Row; 4]; 3] = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// Next TCP state for a segment with `flags` in `dir`, from `cur`.
pub fn tcp_transition(cur: TcpState, dir: Direction, flags: u8, secure: bool) -> TcpState {
    let Some(ev) = TcpEvent::from_flags(flags) else {
        return TcpState::Close;
    };
    let table = if secure { &SECURE } else { &NORMAL };
    table[dir as usize][ev as usize][cur as usize]
}

/// SCTP states (names as `/proc/net/ip_vs_conn` prints them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SctpState {
    /// Nothing seen.
    None = 0,
    /// INIT from the client.
    Init1 = 1,
    /// INIT-ACK from the server.
    Init = 2,
    /// COOKIE-ECHO sent by the client.
    CookieSent = 3,
    /// COOKIE-ACK replied.
    CookieReplied = 4,
    /// Cookie wait.
    CookieWait = 5,
    /// Cookie.
    Cookie = 6,
    /// Cookie echoed.
    CookieEchoed = 7,
    /// Association established.
    Established = 8,
    /// SHUTDOWN sent.
    ShutdownSent = 9,
    /// SHUTDOWN received.
    ShutdownReceived = 10,
    /// SHUTDOWN-ACK sent.
    ShutdownAckSent = 11,
    /// Rejected (ABORT during setup).
    Rejected = 12,
    /// Closed.
    Closed = 13,
}

impl SctpState {
    const ALL: [Self; 14] = [
        Self::None,
        Self::Init1,
        Self::Init,
        Self::CookieSent,
        Self::CookieReplied,
        Self::CookieWait,
        Self::Cookie,
        Self::CookieEchoed,
        Self::Established,
        Self::ShutdownSent,
        Self::ShutdownReceived,
        Self::ShutdownAckSent,
        Self::Rejected,
        Self::Closed,
    ];

    /// From the state index; out-of-range values map to `None`.
    pub const fn from_index(i: u8) -> Self {
        if (i as usize) < Self::ALL.len() {
            Self::ALL[i as usize]
        } else {
            Self::None
        }
    }

    /// Listing name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Init1 => "INIT1",
            Self::Init => "INIT",
            Self::CookieSent => "C-SENT",
            Self::CookieReplied => "C-REPLIED",
            Self::CookieWait => "C-WAIT",
            Self::Cookie => "COOKIE",
            Self::CookieEchoed => "C-ECHOED",
            Self::Established => "ESTABLISHED",
            Self::ShutdownSent => "S-SENT",
            Self::ShutdownReceived => "S-RECEIVED",
            Self::ShutdownAckSent => "S-ACK-SENT",
            Self::Rejected => "REJECTED",
            Self::Closed => "CLOSED",
        }
    }

    /// IPVS counts only ESTABLISHED SCTP associations as active.
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Established)
    }

    /// Setup states, evictable first under pressure.
    pub const fn is_half_open(self) -> bool {
        matches!(self, Self::Init1 | Self::Init)
    }

    /// Default timeout of the state (spec 5.4).
    pub const fn default_timeout(self) -> Duration {
        match self {
            Self::None => Duration::from_secs(2),
            Self::Init1 | Self::Rejected => Duration::from_secs(4),
            Self::Established => Duration::from_secs(900),
            _ => Duration::from_secs(61),
        }
    }
}

/// SCTP chunk types the state machine reacts to (RFC 9260 section 3.2).
pub mod sctp_chunk {
    /// DATA.
    pub const DATA: u8 = 0;
    /// INIT.
    pub const INIT: u8 = 1;
    /// INIT ACK.
    pub const INIT_ACK: u8 = 2;
    /// ABORT.
    pub const ABORT: u8 = 6;
    /// SHUTDOWN.
    pub const SHUTDOWN: u8 = 7;
    /// SHUTDOWN ACK.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// COOKIE ECHO.
    pub const COOKIE_ECHO: u8 = 10;
    /// COOKIE ACK.
    pub const COOKIE_ACK: u8 = 11;
    /// SHUTDOWN COMPLETE.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// Next SCTP state from the first chunk type of a packet.
///
/// A condensed form of IPVS's SCTP table: the setup chunks walk INIT1 → INIT → C-ECHOED →
/// ESTABLISHED (or straight to ESTABLISHED on DATA when replies bypass the director), the
/// shutdown chunks walk S-SENT/S-RECEIVED → S-ACK-SENT → CLOSED, ABORT closes (or rejects a
/// setup). Unknown chunks keep the state.
pub fn sctp_transition(cur: SctpState, from_client: bool, chunk: u8) -> SctpState {
    use SctpState as T;
    use sctp_chunk as C;
    match chunk {
        C::INIT => T::Init1,
        C::INIT_ACK => T::Init,
        C::COOKIE_ECHO => T::CookieEchoed,
        C::COOKIE_ACK => T::Established,
        C::DATA => match cur {
            T::CookieEchoed | T::Init | T::Init1 | T::Established | T::CookieReplied => {
                T::Established
            }
            other => other,
        },
        C::SHUTDOWN => {
            if from_client {
                T::ShutdownSent
            } else {
                T::ShutdownReceived
            }
        }
        C::SHUTDOWN_ACK => T::ShutdownAckSent,
        C::SHUTDOWN_COMPLETE => T::Closed,
        C::ABORT => {
            if matches!(cur, T::Init1 | T::Init | T::CookieEchoed) {
                T::Rejected
            } else {
                T::Closed
            }
        }
        _ => cur,
    }
}

/// Per-state timeouts for TCP plus UDP and the configurable subset `--set` touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP timeouts by state index.
    pub tcp: [Duration; TCP_STATES],
    /// UDP timeout (300 s).
    pub udp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            tcp: [
                s(2),
                s(900),
                s(120),
                s(60),
                s(120),
                s(120),
                s(10),
                s(60),
                s(30),
                s(120),
                s(120),
            ],
            udp: s(300),
        }
    }
}

impl Timeouts {
    /// Timeout for a TCP state.
    pub fn tcp_state(&self, s: TcpState) -> Duration {
        self.tcp[s as usize]
    }

    /// Apply `ipvsadm --set tcp tcpfin udp` (seconds; 0 keeps the current value).
    pub fn set(&mut self, tcp_secs: u32, tcp_fin_secs: u32, udp_secs: u32) {
        if tcp_secs != 0 {
            self.tcp[TcpState::Established as usize] = Duration::from_secs(tcp_secs.into());
        }
        if tcp_fin_secs != 0 {
            self.tcp[TcpState::FinWait as usize] = Duration::from_secs(tcp_fin_secs.into());
        }
        if udp_secs != 0 {
            self.udp = Duration::from_secs(udp_secs.into());
        }
    }

    /// The three values `ipvsadm -L --timeout` shows, in seconds: (tcp, tcpfin, udp).
    pub fn get(&self) -> (u32, u32, u32) {
        let c = |d: Duration| u32::try_from(d.secs()).unwrap_or(u32::MAX);
        (
            c(self.tcp[TcpState::Established as usize]),
            c(self.tcp[TcpState::FinWait as usize]),
            c(self.udp),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F_SYN: u8 = 0x02;
    const F_ACK: u8 = 0x10;
    const F_FIN: u8 = 0x01;
    const F_RST: u8 = 0x04;

    #[test]
    fn nat_close_by_client_trace() {
        // spec 5.3: SR -(ack)-> ES -(client fin)-> CW -(server fin)-> TW
        let mut s = tcp_transition(TcpState::None, Direction::Input, F_SYN, false);
        assert_eq!(s, TcpState::SynRecv);
        s = tcp_transition(s, Direction::Input, F_ACK, false);
        assert_eq!(s, TcpState::Established);
        s = tcp_transition(s, Direction::Input, F_FIN | F_ACK, false);
        assert_eq!(s, TcpState::CloseWait);
        s = tcp_transition(s, Direction::Output, F_FIN | F_ACK, false);
        assert_eq!(s, TcpState::TimeWait);
    }

    #[test]
    fn dr_trace_ends_in_fin_wait() {
        let mut s = tcp_transition(TcpState::None, Direction::InputOnly, F_SYN, false);
        s = tcp_transition(s, Direction::InputOnly, F_ACK, false);
        assert_eq!(s, TcpState::Established);
        s = tcp_transition(s, Direction::InputOnly, F_FIN | F_ACK, false);
        assert_eq!(s, TcpState::FinWait);
        assert!(!s.is_active());
    }

    #[test]
    fn event_priority_and_no_flags() {
        assert_eq!(TcpEvent::from_flags(F_RST | F_SYN), Some(TcpEvent::Rst));
        assert_eq!(TcpEvent::from_flags(F_SYN | F_ACK), Some(TcpEvent::Syn));
        assert_eq!(TcpEvent::from_flags(F_FIN | F_ACK), Some(TcpEvent::Fin));
        assert_eq!(
            tcp_transition(TcpState::Established, Direction::Input, 0, false),
            TcpState::Close
        );
    }

    #[test]
    fn rst_from_syn_recv_input_stays() {
        assert_eq!(
            tcp_transition(TcpState::SynRecv, Direction::Input, F_RST, false),
            TcpState::SynRecv
        );
        assert_eq!(
            tcp_transition(TcpState::SynAck, Direction::InputOnly, F_RST, false),
            TcpState::Close
        );
    }

    #[test]
    fn secure_tables_differ_only_where_documented() {
        let mut diffs = 0;
        for d in 0..3 {
            for e in 0..4 {
                for s in 0..TCP_STATES {
                    if NORMAL[d][e][s] != SECURE[d][e][s] {
                        diffs += 1;
                    }
                }
            }
        }
        // INPUT: syn SA, fin SA, ack SR + SA, rst SA (5); OUTPUT: syn SR + SA (2);
        // INPUT_ONLY syn: NO FW TW CL CW LA LI SA (8).
        assert_eq!(diffs, 15);
        assert_eq!(
            tcp_transition(TcpState::SynRecv, Direction::Input, F_ACK, true),
            TcpState::SynRecv
        );
    }

    #[test]
    fn set_timeouts_zero_keeps() {
        let mut t = Timeouts::default();
        t.set(0, 30, 0);
        assert_eq!(t.get(), (900, 30, 300));
        t.set(100, 0, 20);
        assert_eq!(t.get(), (100, 30, 20));
    }

    #[test]
    fn sctp_setup_and_shutdown() {
        use sctp_chunk as C;
        let mut s = sctp_transition(SctpState::None, true, C::INIT);
        assert_eq!(s, SctpState::Init1);
        s = sctp_transition(s, true, C::COOKIE_ECHO);
        s = sctp_transition(s, true, C::DATA);
        assert!(s.is_active());
        s = sctp_transition(s, true, C::SHUTDOWN);
        s = sctp_transition(s, false, C::SHUTDOWN_ACK);
        s = sctp_transition(s, true, C::SHUTDOWN_COMPLETE);
        assert_eq!(s, SctpState::Closed);
        assert_eq!(
            sctp_transition(SctpState::Init1, false, C::ABORT),
            SctpState::Rejected
        );
    }
}
