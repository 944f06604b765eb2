//! A third cluster that speaks TLS, with certificates made here: a test CA, a server
//! certificate for localhost and 127.0.0.1 signed by it, and an unrelated CA. The role
//! `tls_user` may only log in over TLS, with a password (scram-sha-256).

use super::Cluster;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const TLS_ROLE: &str = "tls_user";
pub const TLS_PASSWORD: &str = "tls-S3cret";

pub struct TlsCluster {
    pub cluster: Cluster,
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// A CA that did not.
    pub wrong_ca: PathBuf,
}

static TLS: OnceLock<TlsCluster> = OnceLock::new();

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (the TLS tests need it: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certificates(dir: &Path) {
    let subj_ca = "/CN=neoncopy test CA";
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "3", "-subj", subj_ca,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "wrong-ca.key",
            "-out",
            "wrong-ca.crt",
            "-days",
            "3",
            "-subj",
            "/CN=some other CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "3",
            "-extfile",
            "server.ext",
        ],
    );
}

pub fn tls() -> &'static TlsCluster {
    TLS.get_or_init(|| {
        let cluster = Cluster::start_with("tls", move |dir, data| {
            make_certificates(dir);
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
            if super::is_root() {
                let (uid, gid) = super::postgres_uid().expect("postgres user");
                for f in ["server.crt", "server.key"] {
                    std::os::unix::fs::chown(dir.join(f), Some(uid), Some(gid)).unwrap();
                }
            }
            let hba = data.join("pg_hba.conf");
            let rest = std::fs::read_to_string(&hba).unwrap();
            std::fs::write(
                &hba,
                format!(
                    "hostssl all {TLS_ROLE} 127.0.0.1/32 scram-sha-256\nhostnossl all {TLS_ROLE} 127.0.0.1/32 reject\n{rest}"
                ),
            )
            .unwrap();
            format!(
                "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            )
        });
        cluster.psql(
            "postgres",
            &format!(
                "create role {TLS_ROLE} login createdb password '{TLS_PASSWORD}'; \
                 grant pg_read_all_data, pg_write_all_data to {TLS_ROLE};"
            ),
        );
        TlsCluster {
            ca: cluster.dir.join("ca.crt"),
            wrong_ca: cluster.dir.join("wrong-ca.crt"),
            cluster,
        }
    })
}
