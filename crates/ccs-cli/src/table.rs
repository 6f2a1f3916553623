//! The one table renderer of `ccs`'s human output: rows of cells laid out as columns.

/// How a column's cells are padded to its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

impl Align {
    /// The usual layout of a table of measurements: a label column, then numbers.
    pub fn label_then_numbers(column: usize) -> Align {
        if column == 0 {
            Align::Left
        } else {
            Align::Right
        }
    }
}

/// Lay out rows of cells as columns two spaces apart, without trailing spaces; `align` says
/// how each column (by index) is padded. Rows may have fewer cells than others.
pub fn render(rows: &[Vec<String>], align: impl Fn(usize) -> Align) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[c].saturating_sub(cell.chars().count()));
            match align(c) {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `table` (lines rendered by [`render`]) with `prefix` before each line: a table nested under
/// a heading.
pub fn indent(table: &str, prefix: &str) -> String {
    table
        .lines()
        .map(|line| format!("{prefix}{line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_as_asked_without_trailing_spaces() {
        let rows = vec![
            vec!["NAME".to_owned(), "N".to_owned()],
            vec!["a".to_owned(), "100".to_owned()],
            vec!["long name".to_owned()],
        ];
        assert_eq!(
            render(&rows, Align::label_then_numbers),
            "NAME         N\na          100\nlong name\n"
        );
        assert_eq!(
            render(&rows, |_| Align::Left),
            "NAME       N\na          100\nlong name\n"
        );
    }

    #[test]
    fn an_indented_table_keeps_its_columns() {
        let rows = vec![vec!["a".to_owned(), "1".to_owned()], vec!["bb".to_owned()]];
        assert_eq!(
            indent(&render(&rows, |_| Align::Left), "  "),
            "  a   1\n  bb\n"
        );
    }
}
