//! A TCP proxy for fault injection: forwards a loopback port to a server and can cut every
//! connection through it at once, as a network failure would (no message from the server,
//! the socket just closes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    cut: watch::Sender<u64>,
    /// Bytes forwarded from the server to clients so far.
    pub bytes_down: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:<new port> to 127.0.0.1:`upstream`, on the current runtime.
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = watch::channel(0u64);
        let bytes_down = Arc::new(AtomicU64::new(0));
        let down = bytes_down.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let mut cut_rx = cut_rx.clone();
                let down = down.clone();
                tokio::spawn(async move {
                    let generation = *cut_rx.borrow();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let downstream = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            down.fetch_add(n as u64, Ordering::Relaxed);
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let cut = async {
                        while *cut_rx.borrow() == generation {
                            if cut_rx.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                    };
                    tokio::select! {
                        _ = async { tokio::join!(up, downstream) } => {}
                        _ = cut => {}
                    }
                    // Dropping both halves closes both sockets.
                });
            }
        });
        Proxy {
            port,
            cut,
            bytes_down,
        }
    }

    /// Closes every connection open through the proxy now; new ones are served as before.
    pub fn cut_all(&self) {
        self.cut.send_modify(|g| *g += 1);
    }
}
