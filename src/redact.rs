//! URLs as they may be shown: in error messages, logs and `Debug` output.
//!
//! A configured URL can carry credentials in two places: the userinfo (`https://user:pass@host/`,
//! which reqwest turns into HTTP Basic) and the query (`?api_key=...`). Every place that shows a
//! URL goes through [`url()`], so that there is one rule to get right instead of one per module.

/// What stands in for a removed user name or password.
const MASK: &str = "***";

/// `text` without its secrets: a user name and password become `***`, the query and the fragment
/// are dropped. Text that does not parse as a URL with a host (a relative path, a typo) is cut
/// the same way, by hand, so that even a broken URL never shows its password.
///
/// ```
/// assert_eq!(
///     tapline::redact::url("https://user:s3cret@api.example.com/v1/items?api_key=k#top"),
///     "https://***:***@api.example.com/v1/items"
/// );
/// ```
pub fn url(text: &str) -> String {
    match url::Url::parse(text) {
        // `user:pass@host/x` parses too, as scheme `user` with an opaque path: cut it by hand.
        Ok(parsed) if !parsed.cannot_be_a_base() => parsed_url(parsed),
        _ => unparsed(text),
    }
}

fn parsed_url(mut url: url::Url) -> String {
    url.set_query(None);
    url.set_fragment(None);
    if !url.username().is_empty() {
        // Fails only for URLs that cannot have a user name, which then have none to hide.
        let _ = url.set_username(MASK);
    }
    if url.password().is_some() {
        let _ = url.set_password(Some(MASK));
    }
    url.to_string()
}

/// The same cuts on text the URL parser refused: everything from the first `?` or `#`, and
/// whatever precedes the last `@` of the authority (the part before the first `/` after `//`,
/// or before the first `/` when there is no scheme).
fn unparsed(text: &str) -> String {
    let end = text.find(['?', '#']).unwrap_or(text.len());
    let text = &text[..end];
    let authority_start = text.find("://").map_or(0, |at| at + 3);
    let authority_end = text[authority_start..]
        .find('/')
        .map_or(text.len(), |at| authority_start + at);
    match text[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{MASK}{}",
            &text[..authority_start],
            &text[authority_start + at..]
        ),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_user_and_password_and_drops_query_and_fragment() {
        assert_eq!(
            url("http://user:s3cret@127.0.0.1:8080/token?x=1#f"),
            "http://***:***@127.0.0.1:8080/token"
        );
        assert_eq!(
            url("https://t0ken@host.example/path"),
            "https://***@host.example/path"
        );
        assert_eq!(url("https://:s3cret@host/"), "https://:***@host/");
    }

    #[test]
    fn leaves_a_url_without_secrets_as_it_is() {
        assert_eq!(
            url("https://api.example.com/api/v1/items"),
            "https://api.example.com/api/v1/items"
        );
    }

    #[test]
    fn cuts_text_that_is_not_a_url() {
        assert_eq!(url("items?api_key=s3cret"), "items");
        assert_eq!(url("user:s3cret@host/x"), "***@host/x");
        assert_eq!(url("http://user:s3cret@[bad/x"), "http://***@[bad/x");
        assert_eq!(
            url("http://u:s3cret@host:99999/x"),
            "http://***@host:99999/x"
        );
        assert_eq!(url("readings/@me"), "readings/@me");
        assert_eq!(url("http:user:s3cret@host/x"), "http://***:***@host/x");
    }

    #[test]
    fn a_password_with_an_at_sign_is_masked_whole() {
        let shown = url("https://user:p@ss@host.example/");
        assert!(!shown.contains("p@ss") && !shown.contains("ss@"), "{shown}");
    }
}
