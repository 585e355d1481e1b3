//! `--json` extension: documents parse and carry the documented fields.

use serde_json::Value;

use crate::{new_fake, run_with, words};

fn doc(fake: &std::rc::Rc<std::cell::RefCell<crate::Fake>>, cmd: &str) -> Value {
    let (c, out, err) = run_with(fake, &words(cmd), "");
    assert_eq!((c, err.as_str()), (0, ""), "{cmd}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{cmd}: {e}\n{out}"))
}

#[test]
fn services_document() {
    let fake = new_fake();
    let setup = concat!(
        "-A -t 198.18.0.1:80 -s sh -b sh-port -p 60 -M 255.255.255.0\n",
        "-a -t 198.18.0.1:80 -r 198.18.0.3:80 -m -w 2 -x 10 -y 5\n",
        "-a -t 198.18.0.1:80 -r 198.18.0.2:80 -i --tun-type gue --tun-port 6080 --tun-csum\n",
        "-A -f 7 -6\n",
    );
    assert_eq!(run_with(&fake, &["-R"], setup).0, 0);
    let v = doc(&fake, "-L --json");
    assert_eq!(v["schema"], "rvsadm/1");
    assert_eq!(v["version"], "1.2.1");
    assert_eq!(v["conn_tab_size"], 4096);
    let s = &v["services"][0];
    assert_eq!(s["kind"], "addr");
    assert_eq!(s["family"], "ipv4");
    assert_eq!(s["protocol"], "tcp");
    assert_eq!(s["address"], "198.18.0.1");
    assert_eq!(s["port"], 80);
    assert_eq!(s["fwmark"], Value::Null);
    assert_eq!(s["scheduler"], "sh");
    assert_eq!(s["sched_flags"], serde_json::json!(["sh-port"]));
    assert_eq!(s["persistent"], true);
    assert_eq!(s["timeout"], 60);
    assert_eq!(s["netmask"], "255.255.255.0");
    assert_eq!(s["one_packet"], false);
    assert_eq!(s["stats"]["conns"], 0);
    assert_eq!(s["rates"]["outbps"], 0);
    // Destinations sorted like the text listing.
    let d0 = &s["destinations"][0];
    assert_eq!(d0["address"], "198.18.0.2");
    assert_eq!(d0["forward"], "tunnel");
    assert_eq!(
        d0["tunnel"],
        serde_json::json!({"type": "gue", "port": 6080, "checksum": "csum"})
    );
    let d1 = &s["destinations"][1];
    assert_eq!(d1["address"], "198.18.0.3");
    assert_eq!(d1["forward"], "masq");
    assert_eq!(d1["weight"], 2);
    assert_eq!(d1["u_threshold"], 10);
    assert_eq!(d1["l_threshold"], 5);
    assert_eq!(d1["tunnel"], Value::Null);
    for k in ["active_conns", "inactive_conns", "persistent_conns"] {
        assert_eq!(d1[k], 0, "{k}");
    }
    let f = &v["services"][1];
    assert_eq!(f["kind"], "fwmark");
    assert_eq!(f["family"], "ipv6");
    assert_eq!(f["fwmark"], 7);
    assert_eq!(f["netmask"], "128");
    assert_eq!(f["timeout"], Value::Null);

    let one = doc(&fake, "-L -t 198.18.0.1:80 --json");
    assert_eq!(one["services"].as_array().map(Vec::len), Some(1));
    let (c, _, err) = run_with(&fake, &words("-L -t 198.18.0.9:80 --json"), "");
    assert_eq!((c, err.as_str()), (1, "No such service\n"));
}

#[test]
fn other_documents() {
    let fake = new_fake();
    let v = doc(&fake, "-L --timeout --json");
    assert_eq!(
        v,
        serde_json::json!({"schema": "rvsadm/1", "timeouts": {"tcp": 900, "tcp_fin": 120, "udp": 300}})
    );
    assert_eq!(
        run_with(
            &fake,
            &words("--start-daemon master --mcast-group 239.0.0.1"),
            ""
        )
        .0,
        0
    );
    let v = doc(&fake, "-L --daemon --json");
    assert_eq!(v["daemons"][0]["state"], "master");
    assert_eq!(v["daemons"][0]["mcast_interface"], "eth0");
    assert_eq!(v["daemons"][0]["mcast_group"], "239.0.0.1");
    assert_eq!(v["daemons"][0]["mcast_port"], Value::Null);
    fake.borrow_mut().conns.push(rvs_api::ConnEntry {
        protocol: 0,
        caddr: "198.19.5.7".parse().unwrap(),
        cport: 0,
        vaddr: "0.0.0.1".parse().unwrap(),
        vport: 0,
        daddr: "198.18.4.1".parse().unwrap(),
        dport: 0,
        state: "ASSURED".into(),
        expires_secs: 359,
        pe_name: None,
        pe_data: None,
        fast_path: true,
    });
    let v = doc(&fake, "-L -c --json");
    let c = &v["connections"][0];
    assert_eq!(c["protocol"], "IP");
    assert_eq!(c["protocol_number"], 0);
    assert_eq!(c["virtual_address"], "0.0.0.1");
    assert_eq!(c["expires"], 359);
    assert_eq!(c["state"], "ASSURED");
    assert_eq!(c["kernel_fast_path"], true);
}
