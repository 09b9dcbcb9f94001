// 首页's charts, drawn by ECharts from the numbers the page carries in
// <script type="application/json"> blocks (the same numbers as the tables beside them).
// Each <div data-chart="KIND" data-chart-data="ID"> gets one chart. Charts are drawn again
// after htmx swaps the dashboard in (a new period, a boosted link, the back button) and
// follow the window's size.
(function () {
  "use strict";

  var LEVEL_COLOURS = { O: "#cf1322", A: "#fa541c", B: "#faad14", C: "#52c41a", D: "#1677ff" };
  var STATUS_COLOURS = {
    "已签约": "#52c41a", "签约中": "#1677ff", "匹配中": "#69b1ff", "已面试": "#722ed1",
    "流失客户": "#8c8c8c", "已退款": "#fa8c16", "退款中": "#ffc069", "待定": "#d9d9d9"
  };
  // Tooltips drawn on the canvas: ECharts' HTML tooltips carry style attributes, which
  // the page's Content-Security-Policy refuses.
  var TOOLTIP = { renderMode: "richText", confine: true };
  var charts = [];
  var loading = false;
  var observer = null;

  function levelColour(name) {
    return LEVEL_COLOURS[name.charAt(0)] || (name === "未分级" ? "#bfbfbf" : "#8c8c8c");
  }

  function narrow() {
    return window.innerWidth < 900;
  }

  var options = {
    levels: function (data) {
      return {
        tooltip: Object.assign({ trigger: "axis", axisPointer: { type: "shadow" } }, TOOLTIP),
        legend: { top: 0, type: "scroll" },
        grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
        xAxis: {
          type: "category",
          data: data.sources,
          axisLabel: { interval: 0, rotate: data.sources.length > (narrow() ? 4 : 8) ? 30 : 0 }
        },
        yAxis: { type: "value", minInterval: 1 },
        series: data.series.map(function (level) {
          return {
            name: level.name, type: "bar", stack: "levels", data: level.data, barMaxWidth: 48,
            itemStyle: { color: levelColour(level.name) }, emphasis: { focus: "series" }
          };
        })
      };
    },
    status: function (data) {
      return {
        tooltip: Object.assign({ trigger: "item" }, TOOLTIP),
        legend: { bottom: 0, type: "scroll" },
        series: [{
          // Counts beside the slices, names in the legend: a card's width has no room for both.
          type: "pie", radius: ["36%", "62%"], center: ["50%", "45%"],
          label: { formatter: "{c}" }, labelLine: { length: 6, length2: 6 },
          data: data.items.map(function (item) {
            var colour = STATUS_COLOURS[item.name];
            return colour ? { name: item.name, value: item.value, itemStyle: { color: colour } } : item;
          })
        }]
      };
    },
    funnel: function (data) {
      return {
        tooltip: Object.assign({ trigger: "axis", axisPointer: { type: "shadow" } }, TOOLTIP),
        legend: { top: 0 },
        grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
        xAxis: {
          type: "category", data: data.owners,
          axisLabel: { interval: 0, rotate: data.owners.length > (narrow() ? 4 : 8) ? 30 : 0 }
        },
        yAxis: { type: "value", minInterval: 1 },
        series: [
          { name: "线索", type: "bar", data: data.leads, barMaxWidth: 48,
            itemStyle: { color: "#1677ff" } },
          { name: "已签约", type: "bar", data: data.signed, barMaxWidth: 48,
            itemStyle: { color: "#52c41a" } }
        ]
      };
    }
  };

  // ECharts itself, when a boosted link brought the dashboard into a page whose head
  // did not load it.
  function loadECharts() {
    if (loading) return;
    var holder = document.querySelector("[data-echarts-src]");
    if (!holder) return;
    loading = true;
    var script = document.createElement("script");
    script.src = holder.dataset.echartsSrc;
    script.addEventListener("load", draw);
    document.head.appendChild(script);
  }

  function draw() {
    if (!document.querySelector("[data-chart]")) return;
    if (!window.echarts) {
      loadECharts();
      return;
    }
    // Charts whose element htmx took away.
    charts = charts.filter(function (chart) {
      if (chart.getDom().isConnected) return true;
      if (observer) observer.unobserve(chart.getDom());
      chart.dispose();
      return false;
    });
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      var drawn = window.echarts.getInstanceByDom(element);
      if (drawn && charts.indexOf(drawn) >= 0) return;
      element.replaceChildren();
      element.removeAttribute("_echarts_instance_");
      var source = document.getElementById(element.dataset.chartData);
      var build = options[element.dataset.chart];
      if (!source || !build) return;
      var chart = window.echarts.init(element);
      // No animation: the numbers are there at once, as in the tables.
      chart.setOption(Object.assign({ animation: false }, build(JSON.parse(source.textContent))));
      charts.push(chart);
      if (observer) observer.observe(element);
    });
  }

  // Before htmx keeps a copy of the page for the back button: charts taken down, their boxes
  // left bare. The copy is made by cloning, and cloning the style attributes ECharts gives
  // its elements is an inline style the CSP refuses. The page is replaced right after.
  function undraw() {
    charts.forEach(function (chart) {
      if (observer) observer.unobserve(chart.getDom());
      chart.dispose();
    });
    charts = [];
    document.querySelectorAll("[data-chart]").forEach(function (element) {
      element.replaceChildren();
      element.removeAttribute("style");
      element.removeAttribute("_echarts_instance_");
    });
  }

  // A chart follows its box: the window's width, the grid's columns at a tablet's width.
  // Once per frame, after layout (resizing inside the observer's callback would loop).
  var pending = false;
  function resize() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      charts.forEach(function (chart) {
        if (chart.getDom().isConnected) chart.resize();
      });
    });
  }
  observer = window.ResizeObserver ? new ResizeObserver(resize) : null;
  window.addEventListener("resize", resize);
  document.addEventListener("htmx:afterSettle", draw);
  document.addEventListener("htmx:historyRestore", draw);
  document.addEventListener("htmx:beforeHistorySave", undraw);
  window.wxcrmDashboard = { draw: draw, charts: function () { return charts.slice(); } };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
