//! A story on a terminal as it is written (`generate --stream`). New text is written after what is shown;
//! when the text changes course (a beam search's best line changes, or the finished story is cut after
//! its last full sentence), the cursor goes back to where the two part, the screen is cleared from there,
//! and the rest is written. Where a character lands is counted from the terminal's width, so the story
//! starts at the beginning of a line and nothing else is written while it grows.

use std::io::Write;

use console::Term;

pub struct LiveText<W: Write> {
    out: W,
    width: usize,
    shown: Vec<char>,
}

impl LiveText<Term> {
    /// `None` when standard output is not a terminal (nothing can be taken back there).
    pub fn on_stdout() -> Option<LiveText<Term>> {
        let term = Term::stdout();
        if !term.is_term() {
            return None;
        }
        let width = usize::from(term.size().1).max(1);
        Some(LiveText { out: term, width, shown: Vec::new() })
    }
}

impl<W: Write> LiveText<W> {
    /// Makes the screen show `text` in place of what it shows.
    pub fn show(&mut self, text: &str) {
        let text: Vec<char> = text.chars().collect();
        let common = self.shown.iter().zip(&text).take_while(|(a, b)| a == b).count();
        if common < self.shown.len() {
            let (from_row, _) = cursor_at(self.shown.len(), self.width);
            // The text shown goes on past `common`, so its character lands there even at a line's start.
            let (to_row, to_column) = (common / self.width, common % self.width);
            // Written as they are: a count of 0 means 1 to a terminal, and console's clear returns to
            // the line's start first.
            let mut back = String::new();
            if from_row > to_row {
                back.push_str(&format!("\x1b[{}A", from_row - to_row));
            }
            back.push('\r');
            if to_column > 0 {
                back.push_str(&format!("\x1b[{to_column}C"));
            }
            back.push_str("\x1b[J");
            let _ = self.out.write_all(back.as_bytes());
        }
        let rest: String = text[common..].iter().collect();
        let _ = self.out.write_all(rest.as_bytes());
        let _ = self.out.flush();
        self.shown = text;
    }

    /// Ready for the next story: what is on the screen stays.
    pub fn finish(&mut self) {
        self.shown.clear();
    }
}

/// Row and column of the cursor after `written` characters from the start of a line of `width`: after a
/// full line the cursor waits on its last column (the terminal wraps with the next character).
fn cursor_at(written: usize, width: usize) -> (usize, usize) {
    if written > 0 && written.is_multiple_of(width) {
        (written / width - 1, width)
    } else {
        (written / width, written % width)
    }
}

#[cfg(test)]
mod tests {
    use super::{LiveText, cursor_at};

    #[test]
    fn text_is_added_and_taken_back_across_lines() {
        let mut live = LiveText { out: Vec::new(), width: 10, shown: Vec::new() };
        live.show("It was");
        live.show("It was dark and");
        // Cut back to "It was dark." from row 1 (col 5) to row 1, col 1: same row, no move up.
        live.show("It was dark.");
        // Back to "It " from row 1 to row 0, col 3.
        live.show("It rained.");
        let written = String::from_utf8(live.out).unwrap();
        assert_eq!(written, "It was dark and\r\x1b[1C\x1b[J.\x1b[1A\r\x1b[3C\x1b[Jrained.");
    }

    #[test]
    fn the_cursor_waits_at_the_end_of_a_full_line() {
        assert_eq!(cursor_at(0, 10), (0, 0));
        assert_eq!(cursor_at(7, 10), (0, 7));
        assert_eq!(cursor_at(10, 10), (0, 10));
        assert_eq!(cursor_at(11, 10), (1, 1));
    }
}
