/* pricemon's price chart, shared by the static report and the review workspace.
 * pricemonCharts(charts, targetFor) draws each chart (the payload of monitor/report/charts.py)
 * into the element targetFor(chart, index) returns. Needs uPlot.
 * Our price is a thick dark step line; each competitor has its own stable colour; states seen
 * out of stock are red, dashed, with hollow markers; unconfirmed (suspicious) prices are
 * diamonds in the competitor's colour without a line, so they are never read as the market. */
(function (global) {
  "use strict";
  var DAY = 86400;

  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  /* Tick labels chosen for the spacing of the ticks uPlot found: times within a day (seconds
   * below a minute, milliseconds below a second; the day under the first tick of each day),
   * days from a day on, months from a month on. Labelling
   * by the span alone repeated each day under its twelve-hourly ticks ("28 Nov, 28 Nov, ..."). */
  function timeLabels(u, splits, axisIdx, foundSpace, foundIncr) {
    var step = foundIncr || (splits.length > 1 ? splits[1] - splits[0] : DAY);
    var span = u.scales.x.max - u.scales.x.min;
    var lastDay = null;
    return splits.map(function (ts) {
      var d = new Date(ts * 1000);
      var day = pad(d.getUTCDate()) + " " + MONTHS[d.getUTCMonth()];
      var time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
      if (step < 60) { time += ":" + pad(d.getUTCSeconds()); }  // a sweep's few seconds
      if (step < 1) { time += "." + ("00" + d.getUTCMilliseconds()).slice(-3); }
      if (step >= 28 * DAY) { return MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear(); }
      if (step >= DAY) { return span > 370 * DAY ? day + "\n" + d.getUTCFullYear() : day; }
      var label = day === lastDay ? time : time + "\n" + day;
      lastDay = day;
      return label;
    });
  }

  function seriesOptions(s, stepped) {
    var colour = s.colour || "#1f77b4";
    if (s.kind === "ours") {
      return {label: s.label, stroke: colour, width: 3, paths: stepped, points: {show: false}};
    }
    if (s.kind === "out_of_stock") {
      return {label: s.label, stroke: "#d62728", width: 2, dash: [6, 4], paths: stepped,
              points: {show: true, size: 8, stroke: "#d62728", fill: "#fff", width: 2}};
    }
    if (s.kind === "unconfirmed") {
      return {label: s.label, stroke: colour, width: 0, paths: function () { return null; },
              points: {show: true, size: 10, stroke: colour, fill: "#fff", width: 2,
                       space: 0}};
    }
    return {label: s.label, stroke: colour, width: 1.5, paths: stepped, points: {show: true, size: 5}};
  }

  function draw(chart, target) {
    if (!target || !chart.x || chart.x.length === 0) { return null; }
    var stepped = uPlot.paths.stepped({align: 1});
    var series = [{label: "Time (UTC)"}];
    var data = [chart.x];
    var money = function (u, v) { return v == null ? "–" : v.toFixed(2) + " " + chart.currency; };
    chart.series.forEach(function (s) {
      var options = seriesOptions(s, stepped);
      options.value = money;
      series.push(options);
      data.push(s.values);
    });
    return new uPlot({
      width: Math.max(320, target.clientWidth || 560),
      height: 280,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: {x: {time: true}},
      series: series,
      axes: [
        {label: "Time (UTC)", values: timeLabels, space: 70, size: 50},
        {label: "Price (" + chart.currency + ")", size: 70}
      ]
    }, data, target);
  }

  global.pricemonCharts = function (charts, targetFor) {
    return charts.map(function (chart, index) { return draw(chart, targetFor(chart, index)); });
  };
  global.pricemonCharts.timeLabels = timeLabels;  // for the browser tests
})(window);
