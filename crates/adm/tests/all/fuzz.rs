//! No input makes rvsadm panic: argv, restore input, name databases.

use proptest::prelude::*;
use rvsadm::cli::{CliError, parse_with};
use rvsadm::names::{Names, inet_aton, string_to_number};
use rvsadm::restore::LineReader;

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "-A",
            "-E",
            "-D",
            "-C",
            "-R",
            "-S",
            "-a",
            "-e",
            "-d",
            "-L",
            "-l",
            "-Z",
            "--set",
            "--start-daemon",
            "--stop-daemon",
            "-h",
            "-v",
            "-t",
            "-u",
            "--sctp-service",
            "-f",
            "-6",
            "-s",
            "-p",
            "-M",
            "--pe",
            "-b",
            "-o",
            "-r",
            "-g",
            "-i",
            "-m",
            "--tun-type",
            "--tun-port",
            "--tun-nocsum",
            "--tun-csum",
            "--tun-remcsum",
            "-w",
            "-x",
            "-y",
            "-c",
            "--timeout",
            "--daemon",
            "--stats",
            "--rate",
            "--exact",
            "--thresholds",
            "--persistent-conn",
            "--tun-info",
            "--nosort",
            "--sort",
            "-n",
            "--mcast-interface",
            "--syncid",
            "--sync-maxlen",
            "--mcast-group",
            "--mcast-port",
            "--mcast-ttl",
            "--json",
            "--",
            "-",
            "-Ln",
            "-At",
            "198.18.0.1:80",
            "[::1]:80",
            "::1",
            "lb:http",
            "master",
            "backup",
            "rr",
            "sh",
            "sh-port",
            "gue",
            "0",
            "1",
            "65536",
            "-1",
            "4294967295",
            "255.255.255.0",
            "224.0.0.81",
            "ff02::1",
        ])
        .prop_map(str::to_owned),
        "[-=:\\[\\]a-z0-9.,é]{0,12}",
    ]
}

proptest! {
    #[test]
    fn parse_never_panics(args in prop::collection::vec(token(), 0..10)) {
        let mut argv = vec!["ipvsadm".to_owned()];
        argv.extend(args);
        let names = Names::from_strs("198.18.0.1 lb\n", "http 80/tcp\n");
        match parse_with(&argv, &names, false) {
            Ok(_) => {}
            Err(CliError { message, exit_code, .. }) => {
                prop_assert!(!message.is_empty());
                prop_assert!(matches!(exit_code, 2 | 255));
            }
        }
    }

    #[test]
    fn restore_reader_never_panics(input in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut r = LineReader::new(&input[..]);
        let mut n = 0;
        while let Ok(Some(line)) = r.next_line("p") {
            prop_assert!(!line.is_empty());
            n += 1;
            prop_assert!(n <= input.len() + 1);
        }
    }

    #[test]
    fn databases_never_panic(hosts in "[ -~\\n\\té]{0,200}", services in "[ -~\\n\\té]{0,200}", q in "[ -~é]{0,20}") {
        let n = Names::from_strs(&hosts, &services);
        let _ = n.host_to_v4(&q);
        let _ = n.service_to_port(&q, 6);
        let _ = n.port_to_service(80, 17);
        let _ = n.addr_to_host(&"198.18.0.1".parse().unwrap());
        let _ = inet_aton(&q);
        let _ = string_to_number(&q, 0, 65535);
    }
}
