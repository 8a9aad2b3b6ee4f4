//! The weekly trends as a PNG, drawn in-process (plotters' bitmap
//! backend into a buffer, encoded by `png`): requests, deploys and failed
//! deploys per week as three lines. It carries no text, so no font is
//! looked up or embedded; the digest's message says what each colour is.

use plotters::prelude::*;

use super::{ReportError, Week};

/// The chart's size in pixels.
pub const WIDTH: u32 = 800;
pub const HEIGHT: u32 = 400;

/// The colours the digest names: requests, deploys, failed deploys.
pub const REQUESTS: RGBColor = RGBColor(37, 99, 235);
pub const DEPLOYS: RGBColor = RGBColor(22, 163, 74);
pub const FAILED: RGBColor = RGBColor(220, 38, 38);

/// The PNG of `weeks` (oldest first).
pub fn png(weeks: &[Week]) -> Result<Vec<u8>, ReportError> {
    let err = |e: &dyn std::fmt::Display| ReportError::Chart(e.to_string());
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let n = weeks.len().max(2) as i32 - 1;
        let top = weeks
            .iter()
            .map(|w| w.requests.max(w.deployments))
            .max()
            .unwrap_or(0)
            .max(1) as i32;
        let mut chart = ChartBuilder::on(&root)
            .margin(16)
            .x_label_area_size(0)
            .y_label_area_size(0)
            .build_cartesian_2d(0..n, 0..top + top / 10 + 1)
            .map_err(|e| err(&e))?;
        // Grid: four horizontal lines, and the axis.
        for k in 0..=4 {
            let y = (top + top / 10 + 1) * k / 4;
            let style = if k == 0 {
                BLACK.stroke_width(2)
            } else {
                RGBColor(225, 225, 225).stroke_width(1)
            };
            chart
                .draw_series(LineSeries::new([(0, y), (n, y)], style))
                .map_err(|e| err(&e))?;
        }
        for (colour, pick) in [
            (REQUESTS, (|w: &Week| w.requests) as fn(&Week) -> u64),
            (DEPLOYS, |w: &Week| w.deployments),
            (FAILED, |w: &Week| w.failed_deployments),
        ] {
            let points: Vec<(i32, i32)> = weeks
                .iter()
                .enumerate()
                .map(|(i, w)| (i as i32, pick(w) as i32))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 4, colour.filled())),
                )
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| err(&e))?;
        w.write_image_data(&rgb).map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_a_png_of_the_configured_size() {
        let weeks: Vec<Week> = (0..5)
            .map(|i| Week {
                week: format!("w{i}"),
                start_ms: i,
                requests: 10 + i as u64,
                deployments: 3,
                failed_deployments: (i % 2) as u64,
                questions: 1,
            })
            .collect();
        let bytes = png(&weeks).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = ::png::Decoder::new(std::io::Cursor::new(&bytes));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (WIDTH, HEIGHT));
        // no weeks at all still draws
        assert!(png(&[]).is_ok());
    }
}
