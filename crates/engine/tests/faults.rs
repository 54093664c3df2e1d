//! Faults a real engine cannot produce on demand, from a tiny in-process peer: a response
//! that never comes, a 500 with a JSON message, a body cut short, a TLS handshake that never
//! completes. Everything else is tested against real engines in `tests/`.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use dockhand_engine::{ApiVersion, Client, Endpoint, Error, TlsSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};

/// A peer on a fresh unix socket that answers each connection with `respond`.
struct FakePeer {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl FakePeer {
    fn start<F, Fut>(respond: F) -> Self
    where
        F: Fn(UnixStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let socket = dir.path().join("fake.sock");
        let listener = UnixListener::bind(&socket).expect("the fake peer's socket");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(respond(stream));
            }
        });
        Self { _dir: dir, socket }
    }

    /// A client pinned to API 1.41, so no negotiation ping precedes the call under test.
    fn client(&self, response_timeout: Option<Duration>) -> Client {
        Client::builder(Endpoint::unix(&self.socket))
            .api_version(ApiVersion::new(1, 41))
            .response_timeout(response_timeout)
            .build()
            .expect("a client for the fake peer")
    }
}

/// Reads one request head (up to the blank line).
async fn read_head(stream: &mut UnixStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_response_that_never_comes_times_out() {
    let peer = FakePeer::start(|mut stream| async move {
        let _ = read_head(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(stream);
    });
    let err = peer.client(Some(Duration::from_millis(200))).info().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("GET /v1.41/info") && msg.contains("response headers") && msg.contains("200ms"),
        "{msg}"
    );
    assert!(msg.contains(&peer.socket.display().to_string()), "{msg}");
}

#[tokio::test]
async fn a_500_carries_the_engines_message() {
    let peer = FakePeer::start(|mut stream| async move {
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("GET /v1.41/info HTTP/1.1"), "{head}");
        let body = r#"{"message":"the engine broke"}"#;
        let reply = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(reply.as_bytes()).await.unwrap();
    });
    let err = peer.client(None).info().await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(!err.is_not_found() && !err.is_conflict() && !err.is_timeout());
    let msg = err.to_string();
    assert!(msg.ends_with("the engine answered 500: the engine broke"), "{msg}");
}

#[tokio::test]
async fn a_body_cut_short_is_a_transport_error() {
    let peer = FakePeer::start(|mut stream| async move {
        let _ = read_head(&mut stream).await;
        let reply =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"ID\":\"abc";
        stream.write_all(reply.as_bytes()).await.unwrap();
        // The connection drops with 990 bytes still owed.
    });
    let err = peer.client(None).info().await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("GET /v1.41/info"), "{msg}");
}

#[tokio::test]
async fn a_404_and_a_409_are_told_apart() {
    let peer = FakePeer::start(|mut stream| async move {
        let head = read_head(&mut stream).await;
        let (status, message) = if head.contains("/version") {
            ("404 Not Found", "no such thing")
        } else {
            ("409 Conflict", "busy")
        };
        let body = format!(r#"{{"message":"{message}"}}"#);
        let reply = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        stream.write_all(reply.as_bytes()).await.unwrap();
    });
    let client = peer.client(None);
    assert!(client.version().await.unwrap_err().is_not_found());
    assert!(client.info().await.unwrap_err().is_conflict());
}

#[tokio::test]
async fn a_tls_handshake_that_never_completes_hits_the_connect_timeout() {
    // Accepts TCP and then says nothing: the TLS handshake waits for ever.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = Client::builder(format!("https://{addr}").parse().unwrap())
        .tls(TlsSettings::unverified())
        .api_version(ApiVersion::new(1, 41))
        .connect_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    let err = client.info().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("a connection") && msg.contains(&addr.to_string()), "{msg}");
}

#[tokio::test]
async fn a_json_stream_takes_crlf_and_split_lines_and_reports_error_detail() {
    let peer = FakePeer::start(|mut stream| async move {
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("GET /v1.41/events"), "{head}");
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await
            .unwrap();
        // One event split across two writes, CRLF line ends, a blank line, then an error.
        let pieces: [&[u8]; 4] = [
            br#"{"Type":"container","Action":"cre"#,
            b"ate\",\"Actor\":{\"ID\":\"a\"}}\r\n\r\n",
            b"{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"a\"}}\r\n",
            b"{\"errorDetail\":{\"message\":\"the event stream broke\"},\"error\":\"the event stream broke\"}\r\n",
        ];
        for piece in pieces {
            let chunk = format!("{:x}\r\n", piece.len());
            stream.write_all(chunk.as_bytes()).await.unwrap();
            stream.write_all(piece).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stream.write_all(b"0\r\n\r\n").await.unwrap();
    });
    let mut events = peer.client(None).events(&dockhand_engine::Filters::new()).await.unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!((first.action.as_str(), first.actor.id.as_str()), ("create", "a"));
    assert_eq!(events.next().await.unwrap().unwrap().action, "start");
    let err = events.next().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("the event stream broke"), "{err}");
    assert!(err.to_string().contains("GET /v1.41/events"), "{err}");
}

#[tokio::test]
async fn an_idle_stream_times_out_only_when_asked() {
    let peer = FakePeer::start(|mut stream| async move {
        let _ = read_head(&mut stream).await;
        stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let events = peer.client(None).events(&dockhand_engine::Filters::new()).await.unwrap();
    let mut events = events.with_idle_timeout(Some(Duration::from_millis(200)));
    let err = events.next().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("no data for 200ms"), "{err}");
}

/// Errors keep their cause: the message names the endpoint (and request), and `source()`
/// still reaches the operating system's or serde's own error.
#[tokio::test]
async fn errors_keep_their_cause_behind_a_whole_message() {
    fn find<'a, T: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<T>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let err = Client::new(Endpoint::unix(&missing)).unwrap().info().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&missing.display().to_string()) && msg.contains("No such file"), "{msg}");
    let io = find::<std::io::Error>(&err).expect("the io::Error behind a failed connect");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

    let peer = FakePeer::start(|mut stream| async move {
        read_head(&mut stream).await;
        let body = "{not json";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
    });
    let err = peer.client(None).info().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("GET /v1.41/info") && msg.contains("cannot decode"), "{msg}");
    assert!(find::<serde_json::Error>(&err).is_some(), "serde's error is the source: {err:?}");
}

/// Review finding 4: headers that promise 1000 bytes, then one byte and silence. The body
/// is read under the same deadline as the headers, for a JSON answer and an error alike.
#[tokio::test]
async fn a_body_that_stalls_after_the_headers_times_out() {
    for status in ["200 OK", "500 Internal Server Error"] {
        let peer = FakePeer::start(move |mut stream| async move {
            read_head(&mut stream).await;
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(stream);
        });
        let client = peer.client(Some(Duration::from_millis(300)));
        let err = tokio::time::timeout(Duration::from_secs(60), client.info())
            .await
            .unwrap_or_else(|_| panic!("{status}: info() still waits on a stalled body"))
            .unwrap_err();
        if status.starts_with("200") {
            assert!(err.is_timeout(), "{err:?}");
            assert!(err.to_string().contains("response body"), "{err}");
        } else {
            assert_eq!(err.status(), Some(500), "{err:?}");
        }
    }
}
