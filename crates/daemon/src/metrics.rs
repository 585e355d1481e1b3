//! Prometheus metrics: node_exporter's `node_ipvs_*` series (same names and labels, so
//! existing dashboards work) plus richer `rvs_*` series per service and destination, drops
//! by reason, the connection table and the data plane.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use rvs_core::stats::{Rates, Stats};
use rvs_core::time::Instant;
use rvs_core::{Balancer, DropReason, ForwardMethod, Protocol, ServiceKey};

use crate::dataplane::DpCounters;
use crate::server::Job;

/// Answer scrapes forever: each GET gets a fresh rendering from the engine thread.
pub(crate) fn serve(listener: TcpListener, jobs: mpsc::Sender<Job>) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
        if !read_request_head(&mut s) {
            continue;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        if jobs.send(Job::Metrics { reply: tx }).is_err() {
            return;
        }
        let body = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

/// Read (and ignore) a request head, at most 8 KiB; false when none arrived.
fn read_request_head(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => return n > 0,
            Ok(k) => {
                n += k;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    return true;
                }
            }
        }
    }
    true
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn method_name(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Masq => "masq",
        ForwardMethod::Local => "local",
        ForwardMethod::Tunnel => "tunnel",
        ForwardMethod::DirectRoute => "route",
    }
}

/// Label values are addresses, names and numbers; escape anyway.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn help(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn line(&mut self, name: &str, labels: &str, v: u64) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
        }
    }
}

/// Render every series.
pub(crate) fn render(
    lb: &Balancer,
    _now: Instant,
    dp: Option<(DpCounters, &'static str)>,
) -> String {
    let mut o = Out(String::with_capacity(4096));
    let (total, total_rates) = lb.total_stats();
    let services = lb.services();

    // ---- node_exporter's ipvs collector, verbatim
    for (name, help, v) in [
        (
            "node_ipvs_connections_total",
            "The total number of connections made.",
            total.conns,
        ),
        (
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
            total.inpkts,
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
            total.outpkts,
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
            total.inbytes,
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
            total.outbytes,
        ),
    ] {
        o.help(name, "counter", help);
        o.line(name, "", v);
    }
    let backend_labels = |key: &ServiceKey, addr: &IpAddr, port: u16| -> String {
        let (la, lp, proto, mark) = match *key {
            ServiceKey::Addr { proto, addr, port } => {
                (addr.to_string(), port, proto_name(proto), String::new())
            }
            ServiceKey::Fwmark { mark, .. } => (String::new(), 0, "FWM", mark.to_string()),
        };
        format!(
            "local_address=\"{}\",local_port=\"{lp}\",remote_address=\"{}\",remote_port=\"{port}\",proto=\"{proto}\",local_mark=\"{}\"",
            esc(&la),
            esc(&addr.to_string()),
            esc(&mark)
        )
    };
    for (name, help) in [
        (
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
        ),
    ] {
        o.help(name, "gauge", help);
        for s in &services {
            for d in &s.dests {
                let l = backend_labels(&s.config.key, &d.config.addr, d.config.port);
                let v = match name {
                    "node_ipvs_backend_connections_active" => u64::from(d.active),
                    "node_ipvs_backend_connections_inactive" => u64::from(d.inactive),
                    _ => d.config.weight.max(0) as u64,
                };
                o.line(name, &l, v);
            }
        }
    }

    // ---- rvs series: per service and destination counters and rates
    let svc_labels = |key: &ServiceKey, sched: &str| -> String {
        match *key {
            ServiceKey::Addr { proto, addr, port } => format!(
                "vip=\"{}\",port=\"{port}\",proto=\"{}\",scheduler=\"{}\"",
                esc(&addr.to_string()),
                proto_name(proto),
                esc(sched)
            ),
            ServiceKey::Fwmark { mark, v6 } => format!(
                "fwmark=\"{mark}\",family=\"{}\",scheduler=\"{}\"",
                if v6 { "inet6" } else { "inet" },
                esc(sched)
            ),
        }
    };
    type Get = fn(&Stats) -> u64;
    let counters: [(&str, &str, Get); 5] = [
        ("connections_total", "Connections scheduled.", |s| s.conns),
        ("in_packets_total", "Packets client to real server.", |s| {
            s.inpkts
        }),
        (
            "out_packets_total",
            "Packets real server to client (NAT).",
            |s| s.outpkts,
        ),
        ("in_bytes_total", "Bytes client to real server.", |s| {
            s.inbytes
        }),
        (
            "out_bytes_total",
            "Bytes real server to client (NAT).",
            |s| s.outbytes,
        ),
    ];
    type GetR = fn(&Rates) -> u64;
    let rates: [(&str, &str, GetR); 5] = [
        ("cps", "Connections per second (2 s estimator).", |r| r.cps),
        ("in_pps", "Inbound packets per second.", |r| r.inpps),
        ("out_pps", "Outbound packets per second.", |r| r.outpps),
        ("in_bps", "Inbound bytes per second.", |r| r.inbps),
        ("out_bps", "Outbound bytes per second.", |r| r.outbps),
    ];
    for (suffix, help, get) in counters {
        let name = format!("rvs_service_{suffix}");
        o.help(&name, "counter", help);
        for s in &services {
            o.line(
                &name,
                &svc_labels(&s.config.key, s.config.scheduler.name()),
                get(&s.stats),
            );
        }
        let name = format!("rvs_backend_{suffix}");
        o.help(&name, "counter", help);
        for s in &services {
            let sl = svc_labels(&s.config.key, s.config.scheduler.name());
            for d in &s.dests {
                let l = format!(
                    "{sl},backend=\"{}\",backend_port=\"{}\"",
                    esc(&d.config.addr.to_string()),
                    d.config.port
                );
                o.line(&name, &l, get(&d.stats));
            }
        }
    }
    for (suffix, help, get) in rates {
        let name = format!("rvs_service_rate_{suffix}");
        o.help(&name, "gauge", help);
        for s in &services {
            o.line(
                &name,
                &svc_labels(&s.config.key, s.config.scheduler.name()),
                get(&s.rates),
            );
        }
        let name = format!("rvs_backend_rate_{suffix}");
        o.help(&name, "gauge", help);
        for s in &services {
            let sl = svc_labels(&s.config.key, s.config.scheduler.name());
            for d in &s.dests {
                let l = format!(
                    "{sl},backend=\"{}\",backend_port=\"{}\"",
                    esc(&d.config.addr.to_string()),
                    d.config.port
                );
                o.line(&name, &l, get(&d.rates));
            }
        }
    }
    o.help(
        "rvs_backend_info",
        "gauge",
        "Destination settings (value 1).",
    );
    for s in &services {
        let sl = svc_labels(&s.config.key, s.config.scheduler.name());
        for d in &s.dests {
            let l = format!(
                "{sl},backend=\"{}\",backend_port=\"{}\",method=\"{}\",overloaded=\"{}\"",
                esc(&d.config.addr.to_string()),
                d.config.port,
                method_name(d.config.method),
                d.overloaded
            );
            o.line("rvs_backend_info", &l, 1);
        }
    }
    o.help(
        "rvs_total_rate_cps",
        "gauge",
        "Connections per second, all services.",
    );
    o.line("rvs_total_rate_cps", "", total_rates.cps);

    // ---- the core and the data plane
    let c = lb.counters();
    o.help(
        "rvs_drops_total",
        "counter",
        "Frames dropped by the packet core, by reason.",
    );
    for r in DropReason::ALL {
        o.line(
            "rvs_drops_total",
            &format!("reason=\"{}\"", r.name()),
            c.drops[r as usize],
        );
    }
    for (name, help, v) in [
        (
            "rvs_forwarded_total",
            "Frames forwarded by the core.",
            c.forwarded,
        ),
        (
            "rvs_passed_total",
            "Frames left to the host stack.",
            c.passed,
        ),
        ("rvs_icmp_sent_total", "ICMP errors generated.", c.icmp_sent),
        (
            "rvs_connections_created_total",
            "Connections created.",
            c.conns_created,
        ),
        (
            "rvs_connections_expired_total",
            "Entries expired by their timer.",
            c.conns_expired,
        ),
        (
            "rvs_connections_evicted_total",
            "Half-open entries evicted for new ones.",
            c.conns_evicted,
        ),
    ] {
        o.help(name, "counter", help);
        o.line(name, "", v);
    }
    let (entries, capacity) = lb.connection_count();
    o.help(
        "rvs_connection_table_entries",
        "gauge",
        "Connections and templates tracked.",
    );
    o.line("rvs_connection_table_entries", "", entries as u64);
    o.help(
        "rvs_connection_table_capacity",
        "gauge",
        "Connection table capacity.",
    );
    o.line("rvs_connection_table_capacity", "", capacity as u64);
    o.help(
        "rvs_connection_table_bytes",
        "gauge",
        "Approximate heap bytes of the connection table.",
    );
    o.line(
        "rvs_connection_table_bytes",
        "",
        lb.connection_table_bytes() as u64,
    );
    o.help(
        "rvs_dataplane_info",
        "gauge",
        "Packet I/O backend in use (value 1).",
    );
    o.line(
        "rvs_dataplane_info",
        &format!("backend=\"{}\"", dp.map_or("none", |(_, name)| name)),
        1,
    );
    if let Some((d, _)) = dp {
        o.help(
            "rvs_dataplane_frames_total",
            "counter",
            "Frames received and sent.",
        );
        o.line("rvs_dataplane_frames_total", "direction=\"rx\"", d.rx);
        o.line("rvs_dataplane_frames_total", "direction=\"tx\"", d.tx);
        o.help(
            "rvs_dataplane_loop_seconds_total",
            "counter",
            "Forwarding-loop time in rounds with frames (busy) and without (idle): rate(busy) is the core's load.",
        );
        for (state, ns) in [("busy", d.busy_ns), ("idle", d.idle_ns)] {
            let _ = writeln!(
                o.0,
                "rvs_dataplane_loop_seconds_total{{loop=\"0\",state=\"{state}\"}} {:.6}",
                ns as f64 / 1e9
            );
        }
        o.help(
            "rvs_dataplane_errors_total",
            "counter",
            "Delivery problems, by kind.",
        );
        for (k, v) in [
            ("truncated", d.truncated),
            ("no_route", d.no_route),
            ("not_served", d.not_served),
            ("no_neighbour", d.no_neighbour + d.pending_expired),
            ("tx", d.tx_errors),
        ] {
            o.line("rvs_dataplane_errors_total", &format!("kind=\"{k}\""), v);
        }
        if d.fast_on {
            let f = d.fast;
            o.help(
                "rvs_fastpath_flows",
                "gauge",
                "Flows in the kernel fast path's tables (established flows forwarded by XDP).",
            );
            o.line("rvs_fastpath_flows", "", f.flows);
            o.help(
                "rvs_fastpath_packets_total",
                "counter",
                "Packets of offloaded flows: forwarded in the kernel, or handed to user space (SYN/FIN/RST, TTL, too big). Updated once a second.",
            );
            o.line(
                "rvs_fastpath_packets_total",
                "outcome=\"forwarded\"",
                f.kernel_forwarded,
            );
            o.line(
                "rvs_fastpath_packets_total",
                "outcome=\"to_user_space\"",
                f.kernel_passed,
            );
            o.help(
                "rvs_fastpath_updates_total",
                "counter",
                "Flow-table updates: installs, removals, next-hop changes followed (rerouted) or lost (unrouted), and offers declined (next hop unresolved, table full, egress without native XDP, tunnel of the other family at the TC hook, kernel error).",
            );
            for (k, v) in [
                ("install", f.installs),
                ("remove", f.removes),
                ("no_neighbour", f.no_neighbour),
                ("full", f.full),
                ("unsupported_egress", f.unsupported_egress),
                ("unsupported_tunnel", f.unsupported_tunnel),
                ("rerouted", f.rerouted),
                ("unrouted", f.unrouted),
                ("error", f.errors),
            ] {
                o.line("rvs_fastpath_updates_total", &format!("kind=\"{k}\""), v);
            }
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{Config, DestConfig, ServiceConfig};
    use rvs_sched::{SchedFlags, SchedKind};

    #[test]
    fn node_exporter_names_and_labels() {
        let mut lb = Balancer::new(Config::default(), Instant::ZERO);
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 80,
        };
        lb.add_service(
            ServiceConfig {
                key,
                scheduler: SchedKind::Wlc,
                sched_flags: SchedFlags::NONE,
                persistence: None,
                one_packet: false,
            },
            Instant::ZERO,
        )
        .unwrap();
        let mut d = DestConfig::new("198.19.0.2".parse().unwrap(), 8080);
        d.method = ForwardMethod::Masq;
        d.weight = 3;
        lb.add_dest(&key, d).unwrap();
        let fw = ServiceKey::Fwmark { v6: false, mark: 7 };
        lb.add_service(
            ServiceConfig {
                key: fw,
                scheduler: SchedKind::Rr,
                sched_flags: SchedFlags::NONE,
                persistence: None,
                one_packet: false,
            },
            Instant::ZERO,
        )
        .unwrap();
        lb.add_dest(&fw, DestConfig::new("198.19.0.3".parse().unwrap(), 0))
            .unwrap();
        let text = render(&lb, Instant::ZERO, None);
        assert!(text.contains("\nnode_ipvs_connections_total 0\n"), "{text}");
        assert!(text.contains(
            "node_ipvs_backend_weight{local_address=\"198.18.0.100\",local_port=\"80\",remote_address=\"198.19.0.2\",remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"} 3\n"
        ));
        assert!(text.contains(
            "node_ipvs_backend_connections_active{local_address=\"\",local_port=\"0\",remote_address=\"198.19.0.3\",remote_port=\"0\",proto=\"FWM\",local_mark=\"7\"} 0\n"
        ));
        assert!(text.contains("rvs_drops_total{reason=\"table_full\"} 0\n"));
        // every sample line is NAME{...} VALUE or NAME VALUE
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = l.rsplit_once(' ').expect("value");
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("bad sample line {l}"));
        }
    }
}
