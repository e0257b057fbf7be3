//! PDF documents generated from demands (w.c.s. "generate a document", which Publik converts to
//! PDF): a rendered text template typeset on A4 pages with `pdf-writer`.
//!
//! The text is plain: a line starting with `# ` is a title, `## ` a heading, an empty line a
//! paragraph break, every other line is kept as a line and wrapped at the margin. Text is set in
//! the standard Helvetica, which every PDF reader has, so nothing is embedded; it is encoded in
//! WinAnsi, which covers French (accents, œ, €, guillemets, typographic quotes and dashes).
//! Characters outside it print as `?`.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// A4 in points.
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
/// About 2 cm.
const MARGIN: f32 = 56.0;
/// Most pages one document may have: a runaway template stops there.
pub const MAX_PAGES: usize = 200;

const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// A kind of line, with its font, size and the space it takes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    Title,
    Heading,
    Body,
}

impl Style {
    fn size(self) -> f32 {
        match self {
            Style::Title => 17.0,
            Style::Heading => 13.0,
            Style::Body => 10.5,
        }
    }

    fn bold(self) -> bool {
        self != Style::Body
    }

    fn leading(self) -> f32 {
        self.size() * 1.35
    }

    /// Space before a line of this style that opens a block.
    fn space_before(self) -> f32 {
        match self {
            Style::Title => 4.0,
            Style::Heading => 8.0,
            Style::Body => 0.0,
        }
    }
}

/// One line placed on a page.
#[derive(Debug, Clone, PartialEq)]
struct Placed {
    style: Style,
    y: f32,
    text: Vec<u8>,
}

/// Typesets `text` as a PDF titled `title`.
pub fn typeset(title: &str, text: &str) -> Vec<u8> {
    let pages = layout(text);
    write(title, &pages)
}

/// Breaks the text into lines and pages.
fn layout(text: &str) -> Vec<Vec<Placed>> {
    let width = PAGE_WIDTH - 2.0 * MARGIN;
    // Room for the page number at the bottom.
    let bottom = MARGIN + 14.0;
    let mut pages: Vec<Vec<Placed>> = vec![Vec::new()];
    let mut y = PAGE_HEIGHT - MARGIN;
    let mut gap = 0.0_f32;
    for source in text.lines() {
        let source = source.trim_end();
        let (style, content) = if let Some(t) = source.strip_prefix("## ") {
            (Style::Heading, t.trim())
        } else if let Some(t) = source.strip_prefix("# ") {
            (Style::Title, t.trim())
        } else {
            (Style::Body, source)
        };
        if content.trim().is_empty() {
            gap = gap.max(Style::Body.leading() * 0.6);
            continue;
        }
        let top_of_page = pages.last().is_none_or(Vec::is_empty);
        if !top_of_page {
            y -= gap + style.space_before();
        }
        gap = if style == Style::Body { 0.0 } else { style.leading() * 0.3 };
        for line in wrap(&encode(content), style.bold(), style.size(), width) {
            if y - style.leading() < bottom {
                if pages.len() >= MAX_PAGES {
                    return pages;
                }
                pages.push(Vec::new());
                y = PAGE_HEIGHT - MARGIN;
            }
            y -= style.leading();
            if let Some(page) = pages.last_mut() {
                page.push(Placed { style, y, text: line });
            }
        }
    }
    pages
}

fn write(title: &str, pages: &[Vec<Placed>]) -> Vec<u8> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first_page = 6;
    let page_ref = |i: usize| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(0));
    let content_ref = |i: usize| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(0) + 1);

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..pages.len()).map(page_ref))
        .count(i32::try_from(pages.len()).unwrap_or(i32::MAX));
    pdf.document_info(info).title(TextStr(title)).producer(TextStr("Guichet"));
    for (font, name) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
        pdf.type1_font(font)
            .base_font(Name(name.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    let total = pages.len();
    for (i, lines) in pages.iter().enumerate() {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT));
        page.parent(tree);
        page.contents(content_ref(i));
        page.resources().fonts().pair(REGULAR, regular).pair(BOLD, bold);
        page.finish();

        let mut content = Content::new();
        for line in lines {
            content.begin_text();
            let font = if line.style.bold() { BOLD } else { REGULAR };
            content.set_font(font, line.style.size());
            content.next_line(MARGIN, line.y);
            content.show(Str(&line.text));
            content.end_text();
        }
        if total > 1 {
            let number = encode(&format!("{} / {total}", i + 1));
            let size = 8.5;
            let x = (PAGE_WIDTH - text_width(&number, false, size)) / 2.0;
            content.begin_text();
            content.set_font(REGULAR, size);
            content.next_line(x, MARGIN - 12.0);
            content.show(Str(&number));
            content.end_text();
        }
        pdf.stream(content_ref(i), &content.finish());
    }
    pdf.finish()
}

/// Breaks an encoded line into lines at most `width` wide, at spaces, cutting words that alone
/// are wider.
fn wrap(text: &[u8], bold: bool, size: f32, width: f32) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let space = glyph_width(b' ', bold) * size / 1000.0;
    let mut line_width = 0.0;
    for word in text.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let mut word = word;
        let mut word_width = text_width(word, bold, size);
        if !line.is_empty() && line_width + space + word_width <= width {
            line.push(b' ');
            line.extend_from_slice(word);
            line_width += space + word_width;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        while word_width > width {
            let mut cut = 0;
            let mut w = 0.0;
            while cut < word.len() {
                let next = glyph_width(word[cut], bold) * size / 1000.0;
                if w + next > width && cut > 0 {
                    break;
                }
                w += next;
                cut += 1;
            }
            lines.push(word[..cut].to_vec());
            word = &word[cut..];
            word_width = text_width(word, bold, size);
        }
        line = word.to_vec();
        line_width = word_width;
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn text_width(text: &[u8], bold: bool, size: f32) -> f32 {
    text.iter().map(|&b| glyph_width(b, bold)).sum::<f32>() * size / 1000.0
}

/// Advance widths of Helvetica for the printable ASCII characters, in thousandths of the size
/// (Adobe's font metrics).
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0-9
    278, 278, 584, 584, 584, 556, 1015, // :;<=>?@
    667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, // A-M
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, // N-Z
    278, 278, 278, 469, 556, 333, // [\]^_`
    556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, // a-m
    556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, // n-z
    334, 260, 334, 584, // {|}~
];

/// The same for Helvetica-Bold.
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0-9
    333, 333, 584, 584, 584, 611, 975, // :;<=>?@
    722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, // A-M
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, // N-Z
    333, 278, 333, 584, 556, 333, // [\]^_`
    556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, // a-m
    611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, // n-z
    389, 280, 389, 584, // {|}~
];

/// Width of one WinAnsi byte: accented letters are as wide as their base letter in
/// Helvetica, the rest of the upper half is listed.
fn glyph_width(byte: u8, bold: bool) -> f32 {
    let table = if bold { &HELVETICA_BOLD } else { &HELVETICA };
    let ascii = |c: u8| f32::from(table[usize::from(c - 0x20)]);
    let base = match byte {
        0x20..=0x7e => return ascii(byte),
        0xc0..=0xc5 => b'A',
        0xc7 => b'C',
        0xc8..=0xcb => b'E',
        0xcc..=0xcf => b'I',
        0xd0 => b'D',
        0xd1 => b'N',
        0xd2..=0xd6 | 0xd8 => b'O',
        0xd9..=0xdc => b'U',
        0xdd | 0x9f => b'Y',
        0xde => b'P',
        0xe0..=0xe5 => b'a',
        0xe7 => b'c',
        0xe8..=0xeb => b'e',
        0xec..=0xef => b'i',
        0xf1 => b'n',
        0xf0 | 0xf2..=0xf6 | 0xf8 => b'o',
        0xf9..=0xfc => b'u',
        0xfd | 0xff => b'y',
        0xfe => b'p',
        0x8a => b'S',
        0x9a => b's',
        0x8e => b'Z',
        0x9e => b'z',
        _ => {
            return match byte {
                0xa0 => 278.0,
                0x91 | 0x92 | 0x82 => {
                    if bold {
                        278.0
                    } else {
                        222.0
                    }
                }
                0x93 | 0x94 | 0x84 => {
                    if bold {
                        500.0
                    } else {
                        333.0
                    }
                }
                0x85 | 0x97 | 0x89 | 0xc6 | 0x8c | 0x99 => 1000.0,
                0xe6 | 0x9c => 889.0 + if bold { 0.0 } else { 55.0 },
                0xb0 => 400.0,
                0xd7 | 0xf7 => 584.0,
                0xdf => 611.0,
                _ => 556.0,
            };
        }
    };
    ascii(base)
}

/// Encodes text in WinAnsi (Windows-1252), the encoding of the standard fonts.
fn encode(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\t' => b' ',
            '\u{a0}'..='\u{ff}' => c as u8,
            // French typography's narrow no-break spaces (before « ; : ! ? »).
            '\u{202f}' | '\u{2009}' => 0xa0,
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => 0x85,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8a,
            '‹' => 0x8b,
            'Œ' => 0x8c,
            'Ž' => 0x8e,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9a,
            '›' => 0x9b,
            'œ' => 0x9c,
            'ž' => 0x9e,
            'Ÿ' => 0x9f,
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pdf: &[u8]) -> (usize, String) {
        let doc = lopdf::Document::load_mem(pdf).expect("a PDF lopdf reads");
        let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
        let text = doc.extract_text(&pages).expect("its text");
        (pages.len(), text)
    }

    #[test]
    fn a_document_reads_back_with_its_french_text() {
        let pdf = typeset(
            "Récépissé",
            "# Récépissé de dépôt\n\nDemande n° 42 — « nid-de-poule » déposée le 3 décembre.\n\n## Suite\nCoût estimé : 120 €, œuvre de l’équipe voirie.",
        );
        assert!(pdf.starts_with(b"%PDF-"));
        let (pages, text) = read(&pdf);
        assert_eq!(pages, 1);
        for expected in [
            "Récépissé de dépôt",
            "Demande n° 42 — « nid-de-poule » déposée le 3 décembre.",
            "Coût estimé : 120 €, œuvre de l’équipe voirie.",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text:?}");
        }
    }

    #[test]
    fn long_lines_wrap_inside_the_margins_and_long_texts_take_pages() {
        let width = PAGE_WIDTH - 2.0 * MARGIN;
        let sentence =
            "Le service de la voirie interviendra dans les meilleurs délais. ".repeat(30);
        for line in wrap(&encode(&sentence), false, 10.5, width) {
            assert!(text_width(&line, false, 10.5) <= width);
        }
        let word = "x".repeat(500);
        let cut = wrap(&encode(&word), true, 13.0, width);
        assert!(cut.len() > 1);
        assert_eq!(cut.iter().map(Vec::len).sum::<usize>(), 500);

        let text: String = (1..=150).map(|i| format!("Ligne {i}\n")).collect();
        let (pages, extracted) = read(&typeset("Long", &text));
        assert_eq!(pages, 3);
        assert!(extracted.contains("Ligne 1\n") && extracted.contains("Ligne 150"));
        assert!(extracted.contains("3 / 3"));
    }

    #[test]
    fn a_runaway_text_stops_at_the_page_limit() {
        let text = "ligne\n".repeat(60 * MAX_PAGES);
        assert_eq!(layout(&text).len(), MAX_PAGES);
    }

    #[test]
    fn characters_outside_winansi_print_as_question_marks() {
        assert_eq!(encode("a€ 日"), vec![b'a', 0x80, b' ', b'?']);
    }
}
