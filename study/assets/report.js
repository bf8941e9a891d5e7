
(() => {
  const table = document.getElementById("summary-table");
  const filter = document.getElementById("summary-filter");
  const count = document.getElementById("summary-count");
  const headers = Array.from(table.tHead.rows[0].cells);
  const names = headers.map((th) => th.textContent.trim().toLowerCase());
  const body = table.tBodies[0];
  let rows = Array.from(body.rows);
  const texts = new Map(rows.map((row) => [row, Array.from(row.cells, (c) =>
    c.textContent.trim().toLowerCase())]));
  const key = (row, i) => {
    const text = texts.get(row)[i];
    const value = parseFloat(text);
    return Number.isNaN(value) ? text : value;
  };
  const compare = (a, b, dir) => {
    if (typeof a !== typeof b) return typeof a === "number" ? -1 : 1;
    return dir * (typeof a === "number" ? a - b : a.localeCompare(b));
  };
  const sortBy = (i) => {
    const dir = headers[i].getAttribute("aria-sort") === "ascending" ? -1 : 1;
    headers.forEach((th) => th.removeAttribute("aria-sort"));
    headers[i].setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    const keyed = rows.map((row, n) => [key(row, i), n, row]);
    keyed.sort((p, q) => compare(p[0], q[0], dir) || p[1] - q[1]);
    rows = keyed.map((p) => p[2]);
    body.append(...rows);
  };
  headers.forEach((th, i) => {
    th.tabIndex = 0;
    th.title = "Sort by " + th.textContent.trim();
    th.addEventListener("click", () => sortBy(i));
    th.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(i); }
    });
  });
  const columns = (name) => {
    const exact = names.flatMap((h, i) => (h === name ? [i] : []));
    return exact.length ? exact : names.flatMap((h, i) => (h.includes(name) ? [i] : []));
  };
  const equal = (cell, value) =>
    cell === value || (value !== "" && parseFloat(cell) === Number(value));
  const matches = (row, term) => {
    const cells = texts.get(row);
    const at = term.indexOf("=");
    if (at < 1) return cells.some((cell) => cell.includes(term));
    const value = term.slice(at + 1);
    return columns(term.slice(0, at)).some((i) => equal(cells[i], value));
  };
  const apply = () => {
    const terms = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of rows) {
      row.hidden = !terms.every((term) => matches(row, term));
      shown += row.hidden ? 0 : 1;
    }
    count.textContent = shown + " of " + rows.length + " settings shown";
  };
  filter.addEventListener("input", apply);
  apply();
  document.body.dataset.ready = "1";
})();
