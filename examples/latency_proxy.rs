//! A TCP proxy that adds a fixed delay each way, for measuring behaviour over a wide-area
//! round trip on one machine (benchmarks), and can cut each connection after N bytes from
//! the server (fault tests by hand).
//!
//!   cargo run --release --example latency_proxy -- LISTEN_PORT UPSTREAM_PORT DELAY_MS [CUT_AFTER_BYTES]
//!
//! With DELAY_MS=10 a round trip through the proxy takes 20 ms more.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Forwards bytes, each chunk `delay` after it was read; with `cut`, stops after that many.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration, cut: Option<u64>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
        if cut.is_some_and(|c| total >= c) {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: latency_proxy LISTEN_PORT UPSTREAM_PORT DELAY_MS [CUT_AFTER_BYTES]");
        std::process::exit(2);
    }
    let parse = |s: &str, what: &str| -> u64 {
        s.parse().unwrap_or_else(|_| {
            eprintln!("latency_proxy: {what} must be a number, not {s:?}");
            std::process::exit(2)
        })
    };
    let listen = parse(&args[0], "LISTEN_PORT") as u16;
    let upstream = parse(&args[1], "UPSTREAM_PORT") as u16;
    let delay = Duration::from_millis(parse(&args[2], "DELAY_MS"));
    let cut = args.get(3).map(|s| parse(s, "CUT_AFTER_BYTES"));
    let listener = match TcpListener::bind(("127.0.0.1", listen)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("latency_proxy: cannot listen on 127.0.0.1:{listen}: {e}");
            std::process::exit(1);
        }
    };
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(pipe(cr, sw, delay, None), pipe(sr, cw, delay, cut));
        });
    }
}
