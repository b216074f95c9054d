// Short.io's official Node SDK (@short.io/client-node, pinned in package.json) against
// linkhop's management API: every call goes through the SDK's own request building, and
// every answer that the SDK has a zod schema for is checked with it. Run by
// tests/management/test_sdk_contract.py, which starts the API and gives this script,
// as one JSON argument: {scenario, baseUrl, key, publicKey, domainId, hostname}.
// Scenario "calls": the API's operations, one after another. Scenario "rate-limit": the
// SDK's own retry of 429 answers (createRateLimitFetch), against an API whose limit is 2
// calls a second.
// Prints {"steps": [{name, status, problems}]} and exits 0; the test judges the steps.
import * as sdk from "@short.io/client-node";
import { createClient, createConfig } from "@short.io/client-node/dist/generated/client/index.js";

const { scenario, baseUrl, key, publicKey, domainId, hostname } = JSON.parse(process.argv[2]);
// What an existing Short.io user changes: the base URL. The key goes where setApiKey
// puts it (the raw key in the Authorization header).
const client = createClient(createConfig({ baseUrl, headers: { authorization: key } }));
const publicClient = createClient(createConfig({ baseUrl, headers: { authorization: publicKey } }));
const steps = [];

async function step(name, call, { status = 200, schema = null } = {}) {
  let result;
  try {
    result = await call();
  } catch (error) {
    steps.push({ name, status: null, problems: [`the SDK threw: ${error}`] });
    return undefined;
  }
  const got = result.response ? result.response.status : null;
  const problems = [];
  if (got !== status) {
    const body = JSON.stringify(result.error ?? result.data) ?? "";
    problems.push(`status ${got}, expected ${status}: ${body.slice(0, 300)}`);
  } else if (schema !== null) {
    const parsed = schema.safeParse(result.data);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push(`${issue.path.join(".") || "(body)"}: ${issue.message}`);
      }
    }
  }
  steps.push({ name, status: got, problems });
  return result.data;
}

// An error answer: the SDK's *Errors types give {error: string} for every status.
function errorShape(data) {
  return data && typeof data.error === "string" ? [] : [`no "error" string in ${JSON.stringify(data)}`];
}

// What an answer must say beyond its shape (the effect of the calls before it).
function expect(name, holds, detail) {
  steps.push({ name, status: null, problems: holds ? [] : [detail] });
}

async function errorStep(name, call, status) {
  const result = await call();
  const got = result.response ? result.response.status : null;
  const problems = got === status ? errorShape(result.error) : [`status ${got}, expected ${status}`];
  steps.push({ name, status: got, problems });
}

if (scenario === "rate-limit") {
  const limited = [];
  const retrying = createClient(createConfig({
    baseUrl, headers: { authorization: key },
    fetch: sdk.createRateLimitFetch(globalThis.fetch, {
      maxRetries: 3, baseDelayMs: 100, onRateLimited: (info) => limited.push(info),
    }),
  }));
  for (let call = 1; call <= 3; call++) {
    await step(`listDomains, call ${call} of 3`, () => sdk.listDomains({ client: retrying }),
      { schema: sdk.zListDomainsResponse });
  }
  const first = limited[0];
  expect("the third call was refused once, then retried after Retry-After",
    limited.length === 1 && first.retryAfter >= 1 && first.rateLimitLimit === 2
      && first.rateLimitRemaining === 0 && first.rateLimitReset > 0,
    JSON.stringify(limited.map(({ request, ...info }) => info)));
  console.log(JSON.stringify({ steps }));
  process.exit(0);
}

const suffix = Math.random().toString(36).slice(2, 10);
const original = `https://example.com/sdk/${suffix}`;

await step("listDomains", () => sdk.listDomains({ client }), { schema: sdk.zListDomainsResponse });
await step("getDomain", () => sdk.getDomain({ client, path: { domainId } }),
  { schema: sdk.zGetDomainResponse });
await step("updateDomainSettings", () => sdk.updateDomainSettings({
  client, path: { domainId }, body: { robots: "disallow" },
}), { schema: sdk.zUpdateDomainSettingsResponse });

const link = await step("createLink", () => sdk.createLink({
  client,
  body: {
    domain: hostname, originalURL: original, path: `sdk-${suffix}`, title: "made by the SDK",
    tags: ["sdk"], redirectType: 301, utmSource: "sdk",
  },
}), { schema: sdk.zCreateLinkResponse });
const linkId = link?.idString;
if (linkId === undefined) {
  console.log(JSON.stringify({ steps }));
  process.exit(0);
}
await step("getLink", () => sdk.getLink({ client, path: { linkId } }), { schema: sdk.zGetLinkResponse });
await step("updateLink", () => sdk.updateLink({
  client, path: { linkId }, body: { originalURL: `${original}?v=2`, title: "updated by the SDK" },
}), { schema: sdk.zUpdateLinkResponse });
await step("expandLink", () => sdk.expandLink({ client, query: { domain: hostname, path: `sdk-${suffix}` } }),
  { schema: sdk.zExpandLinkResponse });
await step("listLinks", () => sdk.listLinks({ client, query: { domain_id: domainId, limit: 5 } }),
  { schema: sdk.zListLinksResponse });
const byUrl = await step("getLinksByUrl", () => sdk.getLinksByUrl({
  client, query: { domain: hostname, originalURL: `${original}?v=2` },
}));
const found = (byUrl?.links ?? byUrl ?? []);
expect("getLinksByUrl finds the updated link",
  Array.isArray(found) && found.some((item) => item.idString === linkId), JSON.stringify(byUrl));
await step("archiveLink", () => sdk.archiveLink({ client, body: { link_id: linkId } }),
  { schema: sdk.zArchiveLinkResponse });
await step("unarchiveLink", () => sdk.unarchiveLink({ client, body: { link_id: linkId } }),
  { schema: sdk.zUnarchiveLinkResponse });
const copy = await step("duplicateLink", () => sdk.duplicateLink({
  client, path: { linkId }, body: { path: `sdk-copy-${suffix}` },
}), { schema: sdk.zDuplicateLinkResponse });

await step("createLinkCountry", () => sdk.createLinkCountry({
  client, path: { linkId }, body: { country: "DE", originalURL: "https://example.de/" },
}));
await step("getLinkCountries", () => sdk.getLinkCountries({ client, path: { linkId } }));
await step("deleteLinkCountry", () => sdk.deleteLinkCountry({ client, path: { linkId, country: "DE" } }));
await step("getRegionsByCountry", () => sdk.getRegionsByCountry({ client, path: { country: "DE" } }));
await step("createLinkRegion", () => sdk.createLinkRegion({
  client, path: { linkId }, body: { country: "DE", region: "DE-BE", originalURL: "https://example.de/berlin" },
}));
await step("getLinkRegions", () => sdk.getLinkRegions({ client, path: { linkId } }));
await step("deleteLinkRegion", () => sdk.deleteLinkRegion({
  client, path: { linkId, country: "DE", region: "DE-BE" },
}));

await step("generateQrCode", () => sdk.generateQrCode({
  client, path: { linkIdString: linkId }, body: { type: "svg", useDomainSettings: false },
}));
const bulk = await step("createLinksBulk", () => sdk.createLinksBulk({
  client,
  body: { domain: hostname, links: [{ originalURL: `${original}/a` }, { originalURL: `${original}/b` }] },
}));
await step("addTagsBulk", () => sdk.addTagsBulk({
  client, body: { tag: "sdk-bulk", link_ids: [linkId] },
}));
await step("createLinkPublic", () => sdk.createLinkPublic({
  client: publicClient, body: { domain: hostname, originalURL: `${original}/public` },
}), { schema: sdk.zCreateLinkPublicResponse });

await step("archiveLinksBulk", () => sdk.archiveLinksBulk({ client, body: { link_ids: [linkId] } }),
  { schema: sdk.zArchiveLinksBulkResponse });
await step("unarchiveLinksBulk", () => sdk.unarchiveLinksBulk({ client, body: { link_ids: [linkId] } }),
  { schema: sdk.zUnarchiveLinksBulkResponse });
await step("createLinkCountriesBulk", () => sdk.createLinkCountriesBulk({
  client, path: { linkId },
  body: [{ country: "FR", originalURL: "https://example.fr/" }, { country: "IT", originalURL: "https://example.it/" }],
}));
await step("createLinkRegionsBulk", () => sdk.createLinkRegionsBulk({
  client, path: { linkId }, body: [{ country: "FR", region: "FR-IDF", originalURL: "https://example.fr/paris" }],
}));
await step("generateQrCodesBulk", () => sdk.generateQrCodesBulk({
  client, body: { type: "png", useDomainSettings: false, linkIds: [linkId], domainId: String(domainId) },
}), { status: 201 });  // the SDK's GenerateQrCodesBulkResponses: 201
const folder = await step("createFolder", () => sdk.createFolder({
  client, body: { domainId, name: `sdk ${suffix}` },
}));
await step("listFolders", () => sdk.listFolders({ client, path: { domainId } }));
const folderId = folder?.id ?? folder?.folder?.id;
expect("createFolder answers the folder's id", typeof folderId === "string", JSON.stringify(folder));
if (typeof folderId === "string") {
  await step("getFolder", () => sdk.getFolder({ client, path: { domainId, folderId } }));
}
await step("createDomain", () => sdk.createDomain({
  client, body: { hostname: `sdk-${suffix}.example.com`, hideReferer: true, linkType: "random" },
}), { schema: sdk.zCreateDomainResponse });

await errorStep("getLink of an unknown link", () => sdk.getLink({ client, path: { linkId: "lnk_unknown_0" } }), 404);
await errorStep("createLink without a key", () => sdk.createLink({
  client: createClient(createConfig({ baseUrl })), body: { domain: hostname, originalURL: original },
}), 401);

const bulkIds = Array.isArray(bulk) ? bulk.map((item) => item.idString).filter(Boolean) : [];
expect("createLinksBulk made both links", bulkIds.length === 2, JSON.stringify(bulk));
await step("deleteLinksBulk", () => sdk.deleteLinksBulk({ client, body: { link_ids: bulkIds } }),
  { schema: sdk.zDeleteLinksBulkResponse });
if (copy?.idString) {
  await step("deleteLink (copy)", () => sdk.deleteLink({ client, path: { link_id: copy.idString } }),
    { schema: sdk.zDeleteLinkResponse });
}
await step("deleteLink", () => sdk.deleteLink({ client, path: { link_id: linkId } }),
  { schema: sdk.zDeleteLinkResponse });

console.log(JSON.stringify({ steps }));
