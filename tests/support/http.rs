//! A small HTTP/1.1 file server on loopback for the `http(s)://` tests: `GET` (whole or one
//! `Range: bytes=a-b`) and `HEAD` of the files in a folder, one connection per request, an
//! optional bearer token required, and every `Authorization` header it was sent kept.

use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A running server; it stops when dropped.
pub struct FileServer {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Serves `root` on a spare loopback port; with `token`, only to `Bearer {token}`.
    pub fn start(root: PathBuf, token: Option<&str>) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let token = token.map(|t| format!("Bearer {t}"));
        let thread = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (root, seen, token) = (root.clone(), seen2.clone(), token.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &root, &seen, token.as_deref());
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        FileServer {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:{port}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The `Authorization` headers of every request so far (empty strings for none).
    pub fn authorizations(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    root: &std::path::Path,
    seen: &Mutex<Vec<String>>,
    token: Option<&str>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (mut range, mut auth) = (None, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "range" => range = Some(value.trim().to_owned()),
            "authorization" => auth = value.trim().to_owned(),
            _ => {}
        }
    }
    seen.lock().unwrap().push(auth.clone());
    let mut out = stream;
    // The body: `len` bytes of `file` from where it is positioned.
    let respond = |out: &mut TcpStream,
                   status: &str,
                   headers: &str,
                   len: u64,
                   file: Option<&mut std::fs::File>| {
        let head = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        out.write_all(head.as_bytes())?;
        if let (Some(file), false) = (file, method == "HEAD") {
            std::io::copy(&mut file.take(len), out)?;
        }
        out.flush()
    };
    if token.is_some_and(|t| t != auth) {
        return respond(&mut out, "401 Unauthorized", "", 0, None);
    }
    let path = root.join(target.trim_start_matches('/'));
    let Ok(mut file) = std::fs::File::open(&path) else {
        return respond(&mut out, "404 Not Found", "", 0, None);
    };
    let size = file.metadata()?.len();
    let meta =
        "Last-Modified: Wed, 02 Dec 2026 10:00:00 GMT\r\nETag: \"1\"\r\nAccept-Ranges: bytes\r\n";
    let Some(range) = range else {
        return respond(&mut out, "200 OK", meta, size, Some(&mut file));
    };
    let spec = range.trim_start_matches("bytes=");
    let (start, end) = spec.split_once('-').unwrap_or((spec, ""));
    let start: u64 = start.parse().unwrap_or(0);
    let end: u64 = end.parse().map_or(size, |e: u64| (e + 1).min(size));
    if start >= size || start >= end {
        let headers = format!("Content-Range: bytes */{size}\r\n");
        return respond(&mut out, "416 Range Not Satisfiable", &headers, 0, None);
    }
    let headers = format!("{meta}Content-Range: bytes {start}-{}/{size}\r\n", end - 1);
    file.seek(std::io::SeekFrom::Start(start))?;
    respond(
        &mut out,
        "206 Partial Content",
        &headers,
        end - start,
        Some(&mut file),
    )
}
