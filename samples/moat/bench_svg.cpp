// moat bench --svg: a self-contained SVG bar chart, one panel per test (pp, tg), one
// horizontal bar per device: mean tokens/s with a ±1 sd error bar and its value, under
// an x axis with round ticks. No scripts, fonts or external references.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "samples/moat/bench_report.h"
#include "support/strings.h"

namespace moat::cli {

namespace {

constexpr double kWidth = 760;      // px
constexpr double kLeft = 120;       // px: device labels left of the bars
constexpr double kRight = 150;      // px: value labels right of the longest bar
constexpr double kBar = 22, kGap = 10;  // px: bar height, space between bars
constexpr double kAxis = 34;        // px: tick labels and axis title under a panel

std::string xml_escaped(std::string_view text) {
  std::string out;
  for (char c : text) switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  return out;
}

std::string num(double value, int digits = 1) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

// A round tick step (1, 2 or 5 x 10^k) giving about five ticks up to `max`.
double tick_step(double max) {
  if (max <= 0) return 1;
  const double raw = max / 5, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * magnitude) return m * magnitude;
  return 10 * magnitude;
}

std::string colour(const std::string& backend) {
  static const std::map<std::string, std::string> colours = {
      {"cpu", "#4e79a7"}, {"opencl", "#f28e2b"}, {"cuda", "#59a14f"}, {"hip", "#e15759"}};
  auto it = colours.find(backend);
  return it == colours.end() ? "#7f7f7f" : it->second;
}

struct Bar {
  const DeviceBench* device;
  std::string label;  // device_label
  runtime::MeanSd ts;
};

// One panel at height `top`: its title, bars, error bars, values and axis. Returns its height.
double panel(std::string& svg, double top, const std::string& title, const std::vector<Bar>& bars) {
  double max = 0;
  for (const Bar& b : bars) max = std::max(max, b.ts.mean + b.ts.sd);
  const double step = tick_step(max), axis_max = std::max(step, std::ceil(max / step) * step);
  const double plot = kWidth - kLeft - kRight;
  auto x_of = [&](double v) { return kLeft + plot * std::clamp(v, 0.0, axis_max) / axis_max; };
  svg += cat("<text x=\"", kLeft, "\" y=\"", top + 16, "\" class=\"panel\">", xml_escaped(title), "</text>\n");
  const double bars_top = top + 26, bars_height = static_cast<double>(bars.size()) * (kBar + kGap);
  for (double v = 0; v <= axis_max + step / 2; v += step) {
    const double x = x_of(v);
    svg += cat("<line x1=\"", num(x), "\" y1=\"", bars_top, "\" x2=\"", num(x), "\" y2=\"", bars_top + bars_height,
               "\" class=\"grid\"/>\n");
    svg += cat("<text x=\"", num(x), "\" y=\"", bars_top + bars_height + 14, "\" class=\"tick\">",
               num(v, step < 1 ? 2 : 0), "</text>\n");
  }
  svg += cat("<line x1=\"", kLeft, "\" y1=\"", bars_top + bars_height, "\" x2=\"", kLeft + plot, "\" y2=\"",
             bars_top + bars_height, "\" class=\"axis\"/>\n");
  svg += cat("<text x=\"", kLeft + plot / 2, "\" y=\"", bars_top + bars_height + 30, "\" class=\"tick\">tokens / s</text>\n");
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const double y = bars_top + static_cast<double>(i) * (kBar + kGap) + kGap / 2, mid = y + kBar / 2;
    svg += cat("<text x=\"", kLeft - 8, "\" y=\"", num(mid + 4), "\" class=\"label\">", xml_escaped(b.label),
               "</text>\n");
    svg += cat("<rect x=\"", kLeft, "\" y=\"", num(y), "\" width=\"", num(x_of(b.ts.mean) - kLeft), "\" height=\"", kBar,
               "\" fill=\"", colour(b.device->info.backend), "\"><title>", xml_escaped(b.device->info.name),
               "</title></rect>\n");
    const double lo = x_of(b.ts.mean - b.ts.sd), hi = x_of(b.ts.mean + b.ts.sd);
    svg += cat("<path d=\"M", num(lo), " ", num(mid), " H", num(hi), " M", num(lo), " ", num(mid - 5), " V", num(mid + 5),
               " M", num(hi), " ", num(mid - 5), " V", num(mid + 5), "\" class=\"err\"/>\n");
    svg += cat("<text x=\"", num(hi + 6), "\" y=\"", num(mid + 4), "\" class=\"value\">", num(b.ts.mean, 2), " ± ",
               num(b.ts.sd, 2), "</text>\n");
  }
  return 26 + bars_height + kAxis + 12;
}

}  // namespace

std::string bench_svg(const BenchReport& report) {
  // Panels in the order tests were run: pp first, then tg.
  std::vector<std::pair<std::string, std::vector<Bar>>> panels;
  for (const DeviceBench& d : report.devices)
    for (const runtime::BenchTest& test : d.result.tests) {
      const std::string title = test.n_prompt > 0 ? cat("prompt processing, ", test_label(report, test))
                                                  : cat("token generation, ", test_label(report, test));
      auto it = std::find_if(panels.begin(), panels.end(), [&](const auto& p) { return p.first == title; });
      if (it == panels.end()) it = panels.insert(panels.end(), std::make_pair(title, std::vector<Bar>{}));
      it->second.push_back({&d, device_label(report, d), runtime::mean_sd(samples_ts(test))});
    }
  std::string body;
  double y = 58;
  for (const auto& [title, bars] : panels) y += panel(body, y, title, bars);
  const std::string model = std::filesystem::path(report.model_filename).filename().string();
  std::string svg = cat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", kWidth, "\" height=\"", y, "\" viewBox=\"0 0 ",
                        kWidth, " ", y, "\" font-family=\"Helvetica, Arial, sans-serif\">\n");
  svg +=
      "<style>.title{font-size:16px;font-weight:bold}.panel{font-size:13px;font-weight:bold}"
      ".label{font-size:12px;text-anchor:end}.value{font-size:11px}.tick{font-size:10px;text-anchor:middle;fill:#555}"
      ".grid{stroke:#e0e0e0}.axis{stroke:#444}.err{stroke:#222;stroke-width:1.2;fill:none}</style>\n";
  svg += cat("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  svg += cat("<text x=\"", kWidth / 2, "\" y=\"24\" class=\"title\" text-anchor=\"middle\">moat bench: ",
             xml_escaped(model), " (", xml_escaped(report.model.label), ")</text>\n");
  size_t runs = 0;
  std::string when;
  for (const DeviceBench& d : report.devices) {
    if (when.empty()) when = d.test_time;
    for (const runtime::BenchTest& test : d.result.tests) runs = std::max(runs, test.samples_ns.size());
  }
  svg += cat("<text x=\"", kWidth / 2, "\" y=\"42\" class=\"tick\">mean ± sd of ", runs, runs == 1 ? " run" : " runs",
             " after a warm-up", report.build_commit.empty() ? "" : cat(" · build ", xml_escaped(report.build_commit)),
             when.empty() ? "" : cat(" · ", xml_escaped(when)), "</text>\n");
  return svg + body + "</svg>\n";
}

}  // namespace moat::cli
