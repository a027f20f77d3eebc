//! The pages one run has fetched, so that pagination ends even when the source's does not.
//!
//! Why: a `next` link to the page itself, or any cycle (`a → b → a`), would otherwise deliver the
//! same records again and again until the page cap, on every run. A URL is compared whole,
//! query included (pages often differ only there), but without its fragment, which is never
//! sent. The cap stays as a backstop for sources that make up a new URL for every page.

use std::collections::HashMap;

use url::Url;

use crate::redact;
use crate::runner::TaskError;

/// Pages per run at most.
pub(super) const MAX_PAGES: usize = 10_000;

/// The URLs fetched so far in this run, with their page numbers.
#[derive(Debug, Default)]
pub(super) struct Trail {
    visited: HashMap<Url, usize>,
}

impl Trail {
    /// Records that `url` is fetched next; an error when it already was in this run, or when
    /// this would be page [`MAX_PAGES`] + 1.
    pub(super) fn enter(&mut self, url: &Url) -> Result<(), TaskError> {
        let mut key = url.clone();
        key.set_fragment(None);
        let page = self.visited.len() + 1;
        if let Some(first) = self.visited.get(&key) {
            return Err(TaskError::msg(format!(
                "source.next of page {} leads back to {} (page {first} of this run); \
                 stopping: the source's pagination loops",
                page - 1,
                redact::url(key.as_str()),
            )));
        }
        if page > MAX_PAGES {
            return Err(TaskError::msg(format!(
                "stopped after {MAX_PAGES} pages; check source.next"
            )));
        }
        self.visited.insert(key, page);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn a_cycle_is_named_without_its_query() {
        let mut trail = Trail::default();
        trail.enter(&url("https://s.example/a?key=s3cret")).unwrap();
        trail.enter(&url("https://s.example/b?key=s3cret")).unwrap();
        let error = trail
            .enter(&url("https://s.example/a?key=s3cret#top"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("page 2 leads back to https://s.example/a (page 1"),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn pages_differing_only_in_the_query_are_different_pages() {
        let mut trail = Trail::default();
        for page in 0..50 {
            trail
                .enter(&url(&format!("https://s.example/items?page={page}")))
                .unwrap();
        }
    }

    #[test]
    fn stops_after_the_cap() {
        let mut trail = Trail::default();
        for page in 0..MAX_PAGES {
            trail
                .enter(&url(&format!("https://s.example/p/{page}")))
                .unwrap();
        }
        let error = trail.enter(&url("https://s.example/one-more")).unwrap_err();
        assert!(error.to_string().contains("stopped after 10000 pages"));
    }
}
