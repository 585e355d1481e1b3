//! Traffic counters and IPVS's 2-second rate estimator (spec 3.2, 3.8).

use crate::time::Instant;

/// Cumulative counters of a service, a destination or the whole director.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections scheduled (templates and synced entries excluded).
    pub conns: u64,
    /// Packets client → real server.
    pub inpkts: u64,
    /// Packets real server → client (NAT only).
    pub outpkts: u64,
    /// IP bytes client → real server.
    pub inbytes: u64,
    /// IP bytes real server → client.
    pub outbytes: u64,
}

/// Per-second rates as `ipvsadm --rate` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Inbound packets per second.
    pub inpps: u64,
    /// Outbound packets per second.
    pub outpps: u64,
    /// Inbound bytes per second.
    pub inbps: u64,
    /// Outbound bytes per second.
    pub outbps: u64,
}

/// The estimator's sampling period.
pub const ESTIMATOR_PERIOD_MS: u64 = 2000;

/// IPVS's rate estimator: every 2 s the counter deltas are scaled (`2^9` for conns and
/// packets, `2^4` for bytes, per second over 2 s) and folded into an EWMA with weight 1/4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
    next_ms: u64,
}

fn ewma(avg: u64, rate: u64) -> u64 {
    // avg += (rate - avg) >> 2 with signed arithmetic
    let a = avg as i128;
    let r = rate as i128;
    (a + ((r - a) >> 2)).max(0) as u64
}

impl Estimator {
    /// An estimator whose first sample is taken at `now + 2 s`.
    pub fn new(now: Instant) -> Self {
        Self {
            next_ms: now.millis() + ESTIMATOR_PERIOD_MS,
            ..Self::default()
        }
    }

    /// Take one 2-second sample of `cur`.
    pub fn sample(&mut self, cur: &Stats) {
        // delta over 2 s: rate per second scaled by 2^10 / 2 = 2^9 (2^5 / 2 = 2^4 for bytes)
        let d = |c: u64, l: u64| c.wrapping_sub(l);
        self.cps = ewma(self.cps, d(cur.conns, self.last.conns) << 9);
        self.inpps = ewma(self.inpps, d(cur.inpkts, self.last.inpkts) << 9);
        self.outpps = ewma(self.outpps, d(cur.outpkts, self.last.outpkts) << 9);
        self.inbps = ewma(self.inbps, d(cur.inbytes, self.last.inbytes) << 4);
        self.outbps = ewma(self.outbps, d(cur.outbytes, self.last.outbytes) << 4);
        self.last = *cur;
    }

    /// Run every sample due by `now`.
    pub fn tick(&mut self, cur: &Stats, now: Instant) {
        let mut n = 0;
        while self.next_ms <= now.millis() && n < 64 {
            self.sample(cur);
            self.next_ms += ESTIMATOR_PERIOD_MS;
            n += 1;
        }
        if self.next_ms <= now.millis() {
            self.next_ms = now.millis() + ESTIMATOR_PERIOD_MS;
        }
    }

    /// Current rates.
    pub fn rates(&self) -> Rates {
        Rates {
            cps: (self.cps + 0x1FF) >> 10,
            inpps: (self.inpps + 0x1FF) >> 10,
            outpps: (self.outpps + 0x1FF) >> 10,
            inbps: (self.inbps + 0xF) >> 5,
            outbps: (self.outbps + 0xF) >> 5,
        }
    }

    /// `-Z`: forget history (the next sample starts from `cur`).
    pub fn zero(&mut self, cur: &Stats) {
        let next = self.next_ms;
        *self = Self {
            last: *cur,
            next_ms: next,
            ..Self::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_converges() {
        let mut e = Estimator::new(Instant::ZERO);
        let mut s = Stats::default();
        for i in 1..=100u64 {
            // 100 conns/s, 1000 pkts/s, 64000 B/s
            s.conns += 200;
            s.inpkts += 2000;
            s.inbytes += 128_000;
            e.tick(&s, Instant::from_millis(i * 2000));
        }
        let r = e.rates();
        assert_eq!(r.cps, 100);
        assert_eq!(r.inpps, 1000);
        assert_eq!(r.inbps, 64_000);
        assert_eq!(r.outpps, 0);
    }

    #[test]
    fn first_sample_is_a_quarter() {
        let mut e = Estimator::new(Instant::ZERO);
        let s = Stats {
            conns: 800,
            ..Stats::default()
        };
        e.tick(&s, Instant::from_millis(2000));
        // rate 400/s, avg = 400/4 = 100
        assert_eq!(e.rates().cps, 100);
        e.zero(&s);
        assert_eq!(e.rates(), Rates::default());
    }
}
