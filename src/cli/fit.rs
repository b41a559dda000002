//! Fitting `switchyard ctl`'s output to the terminal. The width to fit is
//! none with `--wide`, else `COLUMNS` when set, else the terminal's; off a
//! terminal (a pipe, a CI log) nothing wraps, so lines stay whole. A line
//! comes in several renderings, widest first, that drop or shorten fields
//! by priority; the first that fits is shown.

use std::io::IsTerminal;

/// The columns to fit, if any.
pub fn columns(wide: bool) -> Option<usize> {
    if wide {
        return None;
    }
    let env = std::env::var("COLUMNS").ok();
    if let Some(c) = env.and_then(|c| c.trim().parse::<usize>().ok()) {
        return Some(c).filter(|&c| c > 0);
    }
    std::io::stdout()
        .is_terminal()
        .then(terminal_width)
        .flatten()
}

/// The terminal's width in columns (stdout), if known.
fn terminal_width() -> Option<usize> {
    #[cfg(unix)]
    {
        rustix::termios::tcgetwinsize(std::io::stdout())
            .ok()
            .map(|w| usize::from(w.ws_col))
            .filter(|&w| w > 0)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `line` cut to fit in `width` columns (every character here is one
/// column wide), ending in `…` when cut. The last column stays free, so a
/// line redrawn in place never wraps.
pub fn fit(line: &str, width: Option<usize>) -> std::borrow::Cow<'_, str> {
    match width {
        Some(w) if line.chars().count() >= w => {
            let mut cut: String = line.chars().take(w.saturating_sub(2)).collect();
            cut.push('…');
            cut.into()
        }
        _ => line.into(),
    }
}

/// The first of `wide` and then `narrower` (each narrower than the one
/// before) that fits `width`; the narrowest cut when none does.
pub fn choose<'a>(
    wide: &'a str,
    narrower: &'a [String],
    width: Option<usize>,
) -> std::borrow::Cow<'a, str> {
    let Some(w) = width else { return wide.into() };
    let all = std::iter::once(wide).chain(narrower.iter().map(String::as_str));
    match all.clone().find(|l| l.chars().count() < w) {
        Some(l) => l.into(),
        None => fit(all.last().unwrap_or(wide), width),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_wider_than_the_terminal_is_cut() {
        assert_eq!(fit("abcdef", Some(10)), "abcdef");
        assert_eq!(fit("abcdef", None), "abcdef");
        assert_eq!(fit("r [██░░] step", Some(8)), "r [██░…");
        assert_eq!(fit("r [██░░] step", Some(8)).chars().count(), 7);
    }

    #[test]
    fn the_widest_rendering_that_fits_is_chosen() {
        let narrower = ["medium".to_owned(), "tiny".to_owned()];
        assert_eq!(choose("the wide one", &narrower, None), "the wide one");
        assert_eq!(choose("the wide one", &narrower, Some(20)), "the wide one");
        assert_eq!(choose("the wide one", &narrower, Some(8)), "medium");
        assert_eq!(choose("the wide one", &narrower, Some(5)), "tiny");
        assert_eq!(choose("the wide one", &narrower, Some(4)), "ti…");
    }
}
