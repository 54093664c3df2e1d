//! An HTTP/1.1 peer on loopback for this crate's tests, for what real peers do not do on
//! demand (a registry's rate-limit headers, a SaaS chat service's webhook): it answers each
//! request with the test's handler and remembers what it heard. Keep-alive; anything that
//! is not HTTP (a TLS hello) is closed, as a plain HTTP server does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the peer heard: method, path and query, and its headers (lower-case).
#[derive(Debug, Clone)]
pub(crate) struct Heard {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
}

pub(crate) type Answer = (u16, Vec<(String, String)>, String);
type Handler = Arc<dyn Fn(&Heard) -> Answer + Send + Sync>;

/// A plain-HTTP peer on loopback that answers each request with `handler`.
pub(crate) struct Peer {
    pub(crate) address: String,
    heard: Arc<Mutex<Vec<Heard>>>,
}

impl Peer {
    pub(crate) async fn start(handler: impl Fn(&Heard) -> Answer + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let log = heard.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, handler.clone(), log.clone()));
            }
        });
        Self { address, heard }
    }

    pub(crate) fn heard(&self) -> Vec<Heard> {
        self.heard.lock().unwrap().clone()
    }
}

/// Serves one connection, request after request (keep-alive); anything that is not HTTP
/// (a TLS hello) closes it.
async fn serve(mut stream: tokio::net::TcpStream, handler: Handler, log: Arc<Mutex<Vec<Heard>>>) {
    let mut buffer = Vec::new();
    loop {
        let end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            // Not a request line (a TLS hello starts with 0x16): closed, as a plain HTTP
            // server answers a TLS client.
            if !buffer[0].is_ascii_uppercase() || buffer.len() > 65_536 {
                return;
            }
        };
        let Ok(head) = String::from_utf8(buffer[..end].to_vec()) else { return };
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let (Some(method), Some(target)) = (first.next(), first.next()) else { return };
        if !method.chars().all(|c| c.is_ascii_uppercase()) {
            return;
        }
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        while buffer.len() < end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buffer[end..end + length]).into_owned();
        buffer.drain(..end + length);
        let heard = Heard { method: method.to_owned(), target: target.to_owned(), headers, body };
        let (status, headers, body) = handler(&heard);
        log.lock().unwrap().push(heard.clone());
        let mut out = format!("HTTP/1.1 {status} Peer\r\ncontent-length: {}\r\n", body.len());
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        if heard.method != "HEAD" {
            out.push_str(&body);
        }
        if stream.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}
