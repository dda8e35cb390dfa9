//! TLS and WebSocket parts of the harness: certificates generated at test time (rcgen) and a
//! mosquitto with one listener per transport and per certificate case.
//!
//! Why: TLS failures are only worth testing against a real TLS stack that mqblast does not
//! share code with (mosquitto uses OpenSSL, and libwebsockets for WebSocket). The independent
//! subscriber stays plain TCP, on a plain listener of the same mosquitto, so what it counts
//! crossed the broker from the transport under test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::{find_program, free_port, Subscriber, TempDir};

/// The openssl CLI (scripts/test.sh installs it), or a panic saying how to get it.
pub fn openssl() -> std::path::PathBuf {
    find_program("openssl").expect("openssl (scripts/test.sh installs it)")
}

fn run_openssl(args: &[&str]) -> String {
    let out = Command::new(openssl())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client certificate `{name}.pem`/`.key` with CN `name`, made the common way: an openssl
/// key and request, signed by the test CA with `openssl x509 -req` and no extensions file,
/// which writes an X.509 version 1 certificate. Returns `openssl x509 -text` of it.
pub fn openssl_v1_client_cert(pki: &Pki, name: &str) -> String {
    let (key, csr, cert) = (
        pki.file(&format!("{name}.key")),
        pki.file(&format!("{name}.csr")),
        pki.file(&format!("{name}.pem")),
    );
    let subject = format!("/CN={name}");
    run_openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        &subject,
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    let (ca, ca_key) = (pki.file("ca.pem"), pki.file("ca.key"));
    let serial = pki.file("ca.srl");
    run_openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAserial",
        &serial,
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &cert,
    ]);
    run_openssl(&["x509", "-in", &cert, "-noout", "-text"])
}

/// A CA, a server certificate for localhost and 127.0.0.1, an expired one, a self-signed one,
/// an unrelated CA, client certificates `device-{i}.pem`/`.key` with CN `device-{i}` and an
/// expired client certificate `expired-device`, all written as PEM files into one directory.
pub struct Pki {
    pub dir: TempDir,
}

struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Issuer {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Issuer { cert, key }
}

fn leaf(names: &[&str], cn: &str, client: bool) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    params
}

impl Pki {
    pub fn generate(devices: u32) -> Pki {
        let dir = TempDir::new("pki");
        let write = |name: &str, pem: String| {
            dir.write(name, &pem);
        };
        let root = ca("mqblast test CA");
        write("ca.pem", root.cert.pem());
        // For certificates made the way users make theirs (openssl_v1_client_cert).
        write("ca.key", root.key.serialize_pem());
        write("other-ca.pem", ca("some other CA").cert.pem());

        let sign = |params: CertificateParams, name: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &root.cert, &root.key).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        };
        sign(
            leaf(&["localhost", "127.0.0.1"], "localhost", false),
            "server",
        );
        let mut expired = leaf(&["localhost", "127.0.0.1"], "localhost", false);
        expired.not_before = date_time_ymd(2020, 1, 1);
        expired.not_after = date_time_ymd(2021, 1, 1);
        sign(expired, "expired");
        for i in 0..devices {
            let cn = format!("device-{i}");
            sign(leaf(&[], &cn, true), &cn);
        }
        let mut expired_device = leaf(&[], "expired-device", true);
        expired_device.not_before = date_time_ymd(2020, 1, 1);
        expired_device.not_after = date_time_ymd(2021, 1, 1);
        sign(expired_device, "expired-device");
        let self_key = KeyPair::generate().unwrap();
        let self_signed = leaf(&["localhost", "127.0.0.1"], "localhost", false)
            .self_signed(&self_key)
            .unwrap();
        write("selfsigned.pem", self_signed.pem());
        write("selfsigned.key", self_key.serialize_pem());
        Pki { dir }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.file(name)
    }
}

/// mosquitto with a listener for every case. Devices publish to `devices/<their user name>/t`
/// only (ACL), so a per-device certificate shows as the device's identity in what arrives.
pub struct TlsBroker {
    child: Child,
    conf_dir: TempDir,
    pub pki: Pki,
    pub plain: u16,
    pub tls: u16,
    pub mtls: u16,
    pub ws: u16,
    pub wss: u16,
    pub expired: u16,
    pub self_signed: u16,
    /// TLS 1.3 with ChaCha20-Poly1305 only (the other listeners negotiate AES-256-GCM).
    pub tls13_chacha: u16,
}

impl TlsBroker {
    pub fn start(devices: u32) -> TlsBroker {
        let pki = Pki::generate(devices);
        let mosquitto = find_program("mosquitto").expect("mosquitto (scripts/test.sh installs it)");
        // A port may be taken between free_port() and mosquitto's bind: try again.
        for _attempt in 0..5 {
            let conf_dir = TempDir::new("mosquitto-tls");
            let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
            let conf_path = conf_dir.write("mosquitto.conf", &config(&pki, &conf_dir, &ports));
            let log = std::fs::File::create(conf_dir.path().join("mosquitto.log")).unwrap();
            let mut child = Command::new(&mosquitto)
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting mosquitto");
            if wait_listening(&mut child, &ports) {
                return TlsBroker {
                    child,
                    conf_dir,
                    pki,
                    plain: ports[0],
                    tls: ports[1],
                    mtls: ports[2],
                    ws: ports[3],
                    wss: ports[4],
                    expired: ports[5],
                    self_signed: ports[6],
                    tls13_chacha: ports[7],
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(conf_dir.path().join("mosquitto.log"));
            eprintln!(
                "mosquitto (TLS) did not start, retrying:\n{}",
                log.unwrap_or_default()
            );
        }
        panic!("mosquitto with TLS listeners failed to start 5 times");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.conf_dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// The independent plain-TCP subscriber, on the plain listener.
    pub fn subscribe(&self, filter: &str, qos: u8) -> Subscriber {
        Subscriber::start(self.plain, filter, qos)
    }
}

fn wait_listening(child: &mut Child, ports: &[u16]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let all = ports
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
        if all {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn config(pki: &Pki, dir: &TempDir, ports: &[u16]) -> String {
    let acl = dir.write(
        "acl",
        // `pattern` lines apply to every client, anonymous or not (`topic` lines before any
        // `user` line would apply to anonymous clients only).
        "pattern readwrite mqblast/#\npattern readwrite v1/#\npattern read devices/#\npattern write devices/%u/t\n",
    );
    let tls = |cert: &str| {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            pki.file("ca.pem"),
            pki.file(&format!("{cert}.pem")),
            pki.file(&format!("{cert}.key"))
        )
    };
    format!(
        "# generated by tests/common/tls.rs\n\
         allow_anonymous true\n\
         acl_file {acl}\n\
         persistence false\n\
         max_inflight_messages 0\n\
         max_queued_messages 0\n\
         max_queued_bytes 0\n\
         set_tcp_nodelay true\n\
         log_dest stderr\n\
         log_type error\nlog_type warning\nlog_type notice\n\
         listener {plain} 127.0.0.1\n\
         listener {tls_port} 127.0.0.1\n{server}\
         listener {mtls} 127.0.0.1\n{server}require_certificate true\nuse_identity_as_username true\n\
         listener {ws} 127.0.0.1\nprotocol websockets\n\
         listener {wss} 127.0.0.1\nprotocol websockets\n{server}\
         listener {expired_port} 127.0.0.1\n{expired}\
         listener {selfsigned_port} 127.0.0.1\n{selfsigned}\
         listener {tls13_chacha} 127.0.0.1\n{server}tls_version tlsv1.3\nciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256\n",
        plain = ports[0],
        tls_port = ports[1],
        mtls = ports[2],
        ws = ports[3],
        wss = ports[4],
        expired_port = ports[5],
        selfsigned_port = ports[6],
        tls13_chacha = ports[7],
        server = tls("server"),
        expired = tls("expired"),
        selfsigned = tls("selfsigned"),
    )
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
