//! A loopback token endpoint that records each request's form body and answers with a fixed
//! JSON body: for looking at exactly what tapline sends (e.g. a client assertion).

use std::collections::HashMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A running capture server.
pub struct Capture {
    /// Its token URL, `http://127.0.0.1:<port>/token`.
    pub url: String,
    bodies: mpsc::UnboundedReceiver<HashMap<String, String>>,
}

impl Capture {
    /// Starts answering every request with 200 and `response` (JSON).
    pub async fn start(response: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let (sender, bodies) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let body = loop {
                        let n = socket.read(&mut chunk).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buffer).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|line| {
                                    let (name, value) = line.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if buffer.len() >= end + 4 + length {
                                break buffer[end + 4..end + 4 + length].to_vec();
                            }
                        }
                    };
                    let form = url::form_urlencoded::parse(&body).into_owned().collect();
                    let _ = sender.send(form);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{response}",
                        response.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        Self { url, bodies }
    }

    /// The form of the next request received.
    pub async fn next_form(&mut self) -> HashMap<String, String> {
        self.bodies.recv().await.expect("a request arrived")
    }
}
