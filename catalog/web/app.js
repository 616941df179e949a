// The catalog's web page: search with filters and facets, asset pages, and purchase and download
// with a browser wallet (EIP-1193 `window.ethereum`). Every text from the index is put in the
// page as text, never as markup. Nothing is stored in the browser and nothing is sent anywhere
// but to this catalog, the wallet, and the asset's keeper when downloading.

const main = document.getElementById("main");
const announce = document.getElementById("announce");
const walletButton = document.getElementById("wallet");
let account = null;

/** Builds an element: h("a", {href: "/"}, "text", child...). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function say(text) {
  announce.textContent = "";
  requestAnimationFrame(() => { announce.textContent = text; });
}

async function api(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `the catalog answered ${response.status}`);
  return body;
}

function short(hex) {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

/** An amount in the token's smallest unit, grouped by thousands. */
function amount(text) {
  return text.replace(/\B(?=(\d{3})+(?!\d))/g, " ");
}

function tokenName(address) {
  return /^0x0{40}$/i.test(address) ? "wei (ETH)" : `units of token ${short(address)}`;
}

/** Tokens' symbols and decimals, asked of the catalog once per page load. */
const tokens = new Map();

function tokenInfo(chain, address) {
  const key = `${chain}/${address.toLowerCase()}`;
  if (!tokens.has(key)) tokens.set(key, api(`/v1/tokens/${chain}/${address}`).catch(() => ({})));
  return tokens.get(key);
}

/** An amount in a token's units: 250000000000000000000 at 18 decimals is "250". */
function units(text, decimals) {
  const value = BigInt(text);
  const scale = 10n ** BigInt(decimals);
  const whole = amount((value / scale).toString());
  const fraction = (value % scale).toString().padStart(decimals, "0").replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : whole;
}

/** A price as text: in the token's units and symbol once known, in its smallest unit until then. */
function priceText(chain, text, token) {
  const span = h("span", { class: "price" }, `${amount(text)} ${tokenName(token)}`);
  tokenInfo(chain, token).then((info) => {
    if (info.symbol && info.decimals !== undefined) {
      span.textContent = `${units(text, info.decimals)} ${info.symbol}`;
      span.title = `${amount(text)} in the smallest unit of ${token}`;
    }
  });
  return span;
}

function assetHref(chain, did) {
  return `/asset/${chain}/${did}`;
}

function navigate(url) {
  history.pushState(null, "", url);
  route();
}

// ---- search -----------------------------------------------------------------------------------

const FILTERS = ["q", "type", "service", "license", "tags", "token", "provider", "chain",
  "price_min", "price_max", "sort"];

function currentQuery() {
  const params = new URLSearchParams(location.search);
  const query = {};
  for (const name of FILTERS) if (params.get(name)) query[name] = params.get(name);
  return query;
}

function queryString(query, extra = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...query, ...extra })) {
    if (value !== undefined && value !== "") params.set(name, value);
  }
  return params.toString();
}

async function searchPage() {
  const query = currentQuery();
  document.title = query.q ? `${query.q} – insitu catalog` : "insitu catalog";
  const input = h("input", { type: "search", name: "q", id: "q", value: query.q || "",
    placeholder: "air quality, traffic, genomes…", "aria-label": "Search assets" });
  const sort = h("select", { name: "sort", id: "sort" },
    ...[["", "Best match"], ["newest", "Newest"], ["price_asc", "Cheapest"],
      ["price_desc", "Dearest"], ["popularity", "Most bought"]]
      .map(([value, label]) => h("option", { value, selected: (query.sort || "") === value }, label)));
  const form = h("form", { class: "search", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const next = { ...query, q: input.value.trim(), sort: sort.value };
    delete next.cursor;
    navigate(`/?${queryString(next)}`);
  } }, input, h("label", { for: "sort", class: "visually-hidden" }, "Sort by"), sort,
  h("button", { type: "submit" }, "Search"));
  const results = h("ol", { class: "results", id: "results" });
  const facets = h("aside", { class: "facets", "aria-label": "Filters" });
  const summary = h("p", { class: "meta", id: "summary" }, "Searching…");
  const more = h("div");
  main.replaceChildren(form, h("div", { class: "layout" }, facets,
    h("section", { "aria-labelledby": "summary" }, summary, results, more)));

  let page;
  try {
    page = await api(`/v1/search?${queryString(query)}`);
  } catch (error) {
    summary.replaceChildren(h("span", { class: "error" }, error.message));
    return;
  }
  const count = `${page.total} asset${page.total === 1 ? "" : "s"} found`;
  summary.textContent = count;
  say(count);
  renderFacets(facets, page.facets, query);
  appendResults(results, page.results);
  let next = page.next;
  const loadMore = h("button", { type: "button", class: "secondary", onclick: async () => {
    loadMore.disabled = true;
    try {
      const following = await api(`/v1/search?${queryString(query, { cursor: next })}`);
      appendResults(results, following.results);
      say(`${following.results.length} more shown`);
      next = following.next;
      if (!next) loadMore.remove();
    } catch (error) {
      say(error.message);
      more.append(h("p", { class: "error" }, error.message));
    } finally {
      loadMore.disabled = false;
    }
  } }, "More results");
  if (next) more.replaceChildren(loadMore);
}

function appendResults(list, results) {
  for (const result of results) {
    const prices = result.services.map((service) =>
      h("span", {}, `${service.type}: `, priceText(result.chain, service.price, service.token)));
    list.append(h("li", {}, h("article", { class: "card" },
      h("h2", {}, h("a", { href: assetHref(result.chain, result.did), "data-link": true }, result.name)),
      h("p", {}, h("span", { class: "badge" }, result.type), h("span", { class: "badge" }, result.license),
        ...result.tags.map((tag) => h("span", { class: "badge" }, tag))),
      h("p", {}, result.description.length > 240 ? `${result.description.slice(0, 240)}…` : result.description),
      h("p", { class: "meta" }, ...prices.flatMap((price, index) => index ? [" · ", price] : [price])),
      h("p", { class: "meta" }, `by ${result.author} · ${result.agreements} agreement${result.agreements === 1 ? "" : "s"} · chain ${result.chain}`))));
  }
}

function renderFacets(container, facets, query) {
  const groups = [["type", "Type", "type"], ["service", "Service", "service"],
    ["license", "Licence", "license"], ["tags", "Tags", "tags"], ["chain", "Chain", "chain"]];
  for (const [field, legend, parameter] of groups) {
    const values = facets[field] || [];
    if (!values.length) continue;
    const chosen = parameter === "tags" ? (query.tags || "").split(",").filter(Boolean)
      : [query[parameter]].filter(Boolean);
    const fieldset = h("fieldset", {}, h("legend", {}, legend));
    for (const { value, count } of values) {
      const checked = chosen.includes(value);
      const box = h("input", { type: "checkbox", checked, onchange: () => {
        const next = { ...query };
        if (parameter === "tags") {
          const tags = checked ? chosen.filter((tag) => tag !== value) : [...chosen, value];
          next.tags = tags.join(",");
        } else {
          next[parameter] = checked ? "" : value;
        }
        navigate(`/?${queryString(next)}`);
      } });
      fieldset.append(h("label", {}, h("span", {}, box, " ", value), h("span", { class: "count" }, count)));
    }
    container.append(fieldset);
  }
}

// ---- asset page -------------------------------------------------------------------------------

async function assetPage(chain, did) {
  main.replaceChildren(h("p", { class: "meta" }, "Loading…"));
  let asset;
  try {
    asset = await api(`/v1/assets/${chain}/${did}`);
  } catch (error) {
    main.replaceChildren(h("p", { class: "error" }, error.message), h("p", {}, h("a", { href: "/", "data-link": true }, "Back to the search")));
    return;
  }
  const summary = asset.summary;
  const title = summary ? summary.name : `Asset ${short(asset.did)}`;
  document.title = `${title} – insitu catalog`;
  const valid = asset.status === "valid";
  const sections = [
    h("p", {}, h("a", { href: "/", "data-link": true }, "← Search")),
    h("h1", {}, title),
  ];
  if (summary) {
    sections.push(h("p", {}, h("span", { class: "badge" }, summary.type), h("span", { class: "badge" }, summary.license),
      ...summary.tags.map((tag) => h("span", { class: "badge" }, tag))));
    sections.push(h("p", {}, summary.description));
    sections.push(h("p", { class: "meta" }, `by ${summary.author}`));
  }
  if (!valid) {
    sections.push(h("p", { class: "status-bad", role: "status" },
      `This asset's metadata is ${asset.status.replaceAll("_", " ")}: it cannot be bought here.`,
      ...asset.problems.map((problem) => h("span", { class: "mono" }, ` ${problem}`))));
  }
  const document_ = asset.document;
  if (document_) {
    sections.push(h("section", { class: "card", "aria-labelledby": "services" },
      h("h2", { id: "services" }, "Services and prices"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Service"), h("th", { scope: "col" }, "Price"), h("th", { scope: "col" }, "Delivery time out"))),
        h("tbody", {}, ...document_.services.map((service) => {
          const total = service.price.reduce((sum, share) => sum + BigInt(share.amount), 0n).toString();
          return h("tr", {}, h("td", {}, service.type), h("td", {}, priceText(asset.chain, total, service.token), h("br"), h("span", { class: "meta" }, "plus the network fee")),
            h("td", {}, `${Math.round(service.timeout.min / 3600)} h – ${Math.round(service.timeout.max / 3600)} h`));
        }))),
      purchasePanel(asset, document_)));
    sections.push(h("section", { class: "card", "aria-labelledby": "files" },
      h("h2", { id: "files" }, "Files"),
      h("ul", {}, ...document_.files.map((file) => h("li", {}, `${file.name} (${file.contentType}, ${amount(String(file.contentSize))} bytes)`)))));
  }
  sections.push(h("section", { class: "card", "aria-labelledby": "provenance" },
    h("h2", { id: "provenance" }, "Provenance"), provenanceGraph(asset)));
  const usage = asset.usage;
  sections.push(h("section", { class: "card", "aria-labelledby": "usage" },
    h("h2", { id: "usage" }, "Usage"),
    h("dl", { class: "facts" },
      h("dt", {}, "Access bought"), h("dd", {}, `${usage.access_agreements} (${usage.access_completed} delivered)`),
      h("dt", {}, "Compute bought"), h("dd", {}, `${usage.compute_agreements} (${usage.compute_completed} delivered)`),
      h("dt", {}, "Refunded"), h("dd", {}, String(usage.refunds)),
      h("dt", {}, "Used as a compute input"), h("dd", {}, String(usage.uses)))));
  sections.push(h("section", { class: "card", "aria-labelledby": "chain" },
    h("h2", { id: "chain" }, "On chain"),
    h("dl", { class: "facts" },
      h("dt", {}, "Asset"), h("dd", { class: "mono" }, asset.did),
      h("dt", {}, "Chain"), h("dd", {}, String(asset.chain)),
      h("dt", {}, "Owner"), h("dd", { class: "mono" }, asset.owner),
      h("dt", {}, "Providers"), h("dd", { class: "mono" }, asset.providers.join(", ") || "none"),
      h("dt", {}, "Registered"), h("dd", {}, `block ${asset.registered_block}, ${new Date(asset.registered_at * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC`),
      h("dt", {}, "Metadata"), h("dd", { class: "mono" }, `${asset.url} (checksum ${short(asset.checksum)})`),
      h("dt", {}, "Status"), h("dd", { class: valid ? "status-valid" : "status-bad" }, asset.status.replaceAll("_", " ")))));
  main.replaceChildren(h("article", { class: "asset" }, ...sections));
  main.focus();
  say(`${title} opened`);
}

/** Sources → this asset → derivatives, as a small diagram with links, and the same as a list. */
function provenanceGraph(asset) {
  const { derived_from: sources, derivatives, generated_by: generation } = asset.provenance;
  if (!sources.length && !derivatives.length) {
    return h("p", { class: "meta" }, "Nothing derived from it, and it was not derived from another asset.");
  }
  const svgNS = "http://www.w3.org/2000/svg";
  const s = (tag, attributes, ...children) => {
    const element = document.createElementNS(svgNS, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
    for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(child));
    return element;
  };
  const rows = Math.max(sources.length, derivatives.length, 1);
  const height = rows * 44 + 12;
  const svg = s("svg", { class: "graph", viewBox: `0 0 640 ${height}`, role: "img", "aria-label": "Provenance graph" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z" }))));
  const node = (x, y, label, href, self) => {
    const box = s("rect", { x, y, width: 180, height: 32, rx: 6, class: self ? "self" : "" });
    const text = s("text", { x: x + 90, y: y + 20, "text-anchor": "middle" }, label);
    if (!href) return s("g", {}, box, text);
    const link = s("a", { href }, box, text);
    return link;
  };
  const middle = height / 2 - 16;
  svg.append(node(230, middle, "this asset", null, true));
  sources.forEach((source, index) => {
    const y = 6 + index * 44;
    svg.append(node(10, y, short(source), assetHref(asset.chain, source)));
    svg.append(s("path", { d: `M 190 ${y + 16} C 210 ${y + 16}, 210 ${middle + 16}, 230 ${middle + 16}` }));
  });
  derivatives.forEach((derivative, index) => {
    const y = 6 + index * 44;
    svg.append(node(450, y, short(derivative), assetHref(asset.chain, derivative)));
    svg.append(s("path", { d: `M 410 ${middle + 16} C 430 ${middle + 16}, 430 ${y + 16}, 450 ${y + 16}` }));
  });
  const list = h("ul", {},
    ...sources.map((source) => h("li", {}, "Derived from ", h("a", { href: assetHref(asset.chain, source), "data-link": true, class: "mono" }, source))),
    ...derivatives.map((derivative) => h("li", {}, "Derived into ", h("a", { href: assetHref(asset.chain, derivative), "data-link": true, class: "mono" }, derivative))));
  const generated = generation
    ? h("p", { class: "meta" }, "Generated by agreement ", h("span", { class: "mono" }, generation.activity), " and attested by ", h("span", { class: "mono" }, generation.agent))
    : null;
  return h("div", {}, svg, generated, list);
}

// ---- wallet -----------------------------------------------------------------------------------

async function connect() {
  if (!window.ethereum) throw new Error("No browser wallet found (an EIP-1193 wallet injects window.ethereum).");
  const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
  if (!accounts.length) throw new Error("The wallet shared no account.");
  account = accounts[0];
  walletButton.textContent = short(account);
  walletButton.setAttribute("aria-label", `Wallet connected: ${account}`);
  return account;
}

walletButton.addEventListener("click", () => connect().catch((error) => say(error.message)));

async function waitForReceipt(hash) {
  for (let attempt = 0; attempt < 240; attempt += 1) {
    const receipt = await window.ethereum.request({ method: "eth_getTransactionReceipt", params: [hash] });
    if (receipt) {
      if (receipt.status !== "0x1") throw new Error(`transaction ${hash} reverted`);
      return receipt;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`transaction ${hash} is not mined after two minutes`);
}

function purchasePanel(asset, document_) {
  const panel = h("div", { class: "purchase" });
  const access = document_.services.find((service) => service.type === "access");
  if (!access || asset.status !== "valid") return panel;
  const log = h("ol", { class: "steps", "aria-live": "polite" });
  const step = (text, className) => { log.append(h("li", { class: className }, text)); say(text); };
  const files = h("div");
  const buy = h("button", { type: "button", id: "buy", onclick: async () => {
    buy.disabled = true;
    try {
      const buyer = account || await connect();
      step("Preparing the purchase on the keeper's signed offer…");
      const plan = await api(`/v1/assets/${asset.chain}/${asset.did}/purchase?service=access&buyer=${buyer}`);
      const token = await tokenInfo(asset.chain, plan.token);
      const shown = (text) => (token.symbol && token.decimals !== undefined
        ? `${units(text, token.decimals)} ${token.symbol}` : `${amount(text)} ${tokenName(plan.token)}`);
      step(`Price ${shown(plan.price)} + network fee ${shown(plan.fee)} = ${shown(plan.total)}; refundable if not delivered within ${Math.round(plan.service_timeout / 3600)} h.`);
      for (const transaction of plan.transactions) {
        step(`Confirm in your wallet: ${transaction.description}.`);
        const hash = await window.ethereum.request({ method: "eth_sendTransaction", params: [{
          from: transaction.from, to: transaction.to, data: transaction.data, value: transaction.value }] });
        await waitForReceipt(hash);
        step(`Done: ${transaction.description}.`);
      }
      step(`Bought: agreement ${plan.agreement_id}.`, "ok");
      buy.remove();
      files.replaceChildren(...document_.files.map((file, index) =>
        h("button", { type: "button", class: "download", onclick: (event) => download(asset, plan.agreement_id, index, event.currentTarget, step) }, `Download ${file.name}`)));
    } catch (error) {
      step(error.message, "error");
      buy.disabled = false;
    }
  } }, "Buy access");
  panel.append(buy, log, files);
  return panel;
}

/** Signs an access request (EIP-712), trades it at the keeper for a short-lived link, opens it. */
async function download(asset, agreement, file, button, step) {
  button.disabled = true;
  try {
    const consumer = account || await connect();
    // A wallet asks its user for each signature: a few tries, spaced as the keeper asks.
    for (let attempt = 0; attempt < 6; attempt += 1) {
      const signing = await api(`/v1/agreements/${asset.chain}/${agreement}/access-request?consumer=${consumer}&file=${file}`);
      step("Sign the access request in your wallet (no transaction, no fee).");
      const signature = await window.ethereum.request({ method: "eth_signTypedData_v4",
        params: [consumer, JSON.stringify(signing.typed_data)] });
      const response = await fetch(`${signing.keeper}${signing.route}`, { method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ chainId: signing.chain_id, request: signing.request, signature }) });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        let url;
        try {
          url = new URL(body.url);
        } catch {
          throw new Error("the keeper's link is not a URL");
        }
        if (url.protocol !== "https:" && url.protocol !== "http:") {
          throw new Error("the keeper's link is not an http(s) URL");
        }
        step("The keeper delivered: downloading.", "ok");
        const link = h("a", { href: url.href, download: "" });
        document.body.append(link);
        link.click();
        link.remove();
        button.disabled = false;
        return;
      }
      if (response.status === 503 && (body.code === "unconfirmed" || body.code === "settlement_pending")) {
        step("The keeper is waiting for the purchase to be confirmed on chain; asking again.");
        const wait = Number(response.headers.get("retry-after") || "2") || 2;
        await new Promise((resolve) => setTimeout(resolve, Math.min(Math.max(wait, 1), 30) * 1000));
        continue;
      }
      throw new Error(body.message || `the keeper answered ${response.status}`);
    }
    throw new Error("the keeper did not deliver in time; try again later");
  } catch (error) {
    step(error.message, "error");
    button.disabled = false;
  }
}

// ---- routing ----------------------------------------------------------------------------------

function route() {
  const match = location.pathname.match(/^\/asset\/(\d+)\/(0x[0-9a-fA-F]{64})$/);
  if (match) assetPage(match[1], match[2]);
  else searchPage();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link], svg a");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", route);
route();
