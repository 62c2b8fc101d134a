// Drives the npm `mailpit-api` client (unchanged) against mailprov's relay and prints what it
// got as one JSON document. Usage: node client.mjs BASE_URL [TOKEN]
import { MailpitClient } from "mailpit-api";

const [base, token] = process.argv.slice(2);
const mailpit = new MailpitClient(base, token ? { auth: { username: "rig", password: token } } : undefined);
const out = {};
const blobText = async (blob) => Buffer.from(await blob.arrayBuffer()).toString("utf8");

const listed = await mailpit.listMessages();
out.listed = { total: listed.total, subjects: listed.messages.map((m) => m.Subject).sort() };
const found = await mailpit.searchMessages({ query: "to:ann@example.test" });
out.search = { count: found.messages_count, ids: found.messages.map((m) => m.ID) };
const id = found.messages[0].ID;
const message = await mailpit.getMessageSummary(id);
out.message = {
  subject: message.Subject,
  from: message.From.Address,
  to: message.To.map((a) => a.Address),
  text: message.Text,
  html: message.HTML,
  attachments: message.Attachments.map((a) => [a.FileName, a.PartID, a.ContentType]),
};
out.latest = (await mailpit.getMessageSummary()).Subject;
out.headers = (await mailpit.getMessageHeaders(id))["Subject"];
out.source_has_marker = (await mailpit.getMessageSource(id)).includes("X-Rig-Marker: npm");
const part = message.Attachments[0].PartID;
out.attachment = await blobText(await mailpit.getMessageAttachment(id, part));
out.view_text = await mailpit.renderMessageText(id);
out.waited = (await mailpit.waitForMessage({ query: "subject:\"for bob\"" }, { timeout: 3000, interval: 50 })).Subject;
out.delete_one = await mailpit.deleteMessages({ IDs: [id] });
out.after_delete_one = (await mailpit.listMessages()).total;
out.delete_search = await mailpit.deleteMessagesBySearch({ query: "to:bob@example.test" });
out.after_delete_search = (await mailpit.listMessages()).messages.map((m) => m.Subject);
out.delete_all = await mailpit.deleteMessages();
out.after_delete_all = (await mailpit.listMessages()).total;
try {
  await mailpit.getTags();
  out.tags = "served";
} catch (error) {
  out.tags = String(error.message);
}
console.log(JSON.stringify(out));
