//! Progress on a terminal: a bar with total, rate and ETA where the total is known, a spinner
//! where it is not, nothing when stderr is not a terminal.

use std::io::{IsTerminal, Read};

use atdata::wds::ShardOpener;
use atdata::{DefaultOpener, LocalDatasetEntry};
use indicatif::{ProgressBar, ProgressStyle};

/// The template for `total` bytes (known or not).
fn template(total: Option<u64>) -> &'static str {
    match total {
        Some(_) => "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        None => "{spinner} {bytes} {bytes_per_sec} {msg}",
    }
}

/// A progress display of bytes read, drawn on stderr when it is a terminal.
pub fn bar(total: Option<u64>, message: impl Into<String>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(template(total))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.into());
    bar
}

/// The bytes the shards of `urls` hold: the sizes `entry` records, else the local files'.
pub fn total_size(urls: &[String], entry: Option<&LocalDatasetEntry>) -> Option<u64> {
    if let Some(sizes) = entry.and_then(LocalDatasetEntry::shard_sizes) {
        return Some(sizes.iter().sum());
    }
    urls.iter()
        .map(|u| {
            std::fs::metadata(u.strip_prefix("file://").unwrap_or(u))
                .ok()
                .map(|m| m.len())
        })
        .sum()
}

/// Opens shards through the default opener, counting the bytes read on a progress bar.
#[derive(Clone)]
pub struct CountingOpener {
    inner: DefaultOpener,
    bar: ProgressBar,
}

impl CountingOpener {
    /// Counts what is read on `bar`.
    pub fn new(bar: ProgressBar) -> CountingOpener {
        CountingOpener {
            inner: DefaultOpener::default(),
            bar,
        }
    }
}

struct Counting {
    inner: Box<dyn Read + Send>,
    bar: ProgressBar,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl ShardOpener for CountingOpener {
    fn open(&self, url: &str) -> atdata::wds::Result<Box<dyn Read + Send>> {
        Ok(Box::new(Counting {
            inner: self.inner.open(url)?,
            bar: self.bar.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_total_gets_a_bar_with_rate_and_eta_else_a_spinner() {
        let with = template(Some(10));
        assert!(
            with.contains("{bar") && with.contains("{eta}") && with.contains("{bytes_per_sec}")
        );
        let without = template(None);
        assert!(without.contains("{spinner}") && !without.contains("{eta}"));
    }
}
