// The official `openai` npm client against mii-serve (run by openai_client_test.sh):
//   node openai_client_test.js OPENAI_MODULE_DIR BASE_URL API_KEY EXPECTED_JSON SAMPLES_JSON
// EXPECTED_JSON maps prompts to mii-generate --greedy's completions of 16 tokens, SAMPLES_JSON to
// mii-generate --n 2 --seed 7 --temperature 1.5 --top-p 1's two samples of 12 tokens.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');

const [moduleDir, baseURL, apiKey, expectedPath, samplesPath] = process.argv.slice(2);
const OpenAI = require(moduleDir);
const expected = JSON.parse(fs.readFileSync(expectedPath, 'utf8'));
const samples = JSON.parse(fs.readFileSync(samplesPath, 'utf8'));
const model = 'demo-llama';
// No retries: a refusal must reach the test as the server sent it.
const client = new OpenAI({ baseURL: baseURL + '/v1', apiKey, maxRetries: 0, timeout: 60000 });

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

// The client's exception for a refused request: our status, our message, our field.
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `expected an APIError, got ${e}`);
    return e;
  }
  assert.fail('the request was accepted');
}

test('models.list names the served model', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, [model]);
  assert.equal(page.data[0].owned_by, 'mii');
  const one = await client.models.retrieve(model);
  assert.equal(one.id, model);
});

test('greedy completions equal mii-generate --greedy', async () => {
  for (const [prompt, text] of Object.entries(expected)) {
    const r = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].text, text, `prompt ${JSON.stringify(prompt)}`);
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  }
});

test('several prompts in one request: one choice each, in order', async () => {
  const prompts = Object.keys(expected);
  const r = await client.completions.create({ model, prompt: prompts, max_tokens: 16, temperature: 0 });
  assert.equal(r.choices.length, prompts.length);
  r.choices.forEach((c, i) => {
    assert.equal(c.index, i);
    assert.equal(c.text, expected[prompts[i]]);
  });
});

test('streamed completions add up to the greedy answer', async () => {
  const [prompt, text] = Object.entries(expected)[0];
  const stream = await client.completions.create({
    model, prompt, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let got = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      got += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(got, text);
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage && usage.completion_tokens > 0 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens);
});

test('n = 2 over a prompt list: choice index = prompt * 2 + sample, each mii-generate --n 2\'s sample', async () => {
  const prompts = Object.keys(samples);
  const r = await client.completions.create({ model, prompt: prompts, n: 2, seed: 7, temperature: 1.5, max_tokens: 12 });
  assert.equal(r.choices.length, 2 * prompts.length);
  r.choices.forEach((c, i) => {
    assert.equal(c.index, i);
    assert.equal(c.text, samples[prompts[Math.floor(i / 2)]][i % 2], `choice ${i}`);
    assert.ok(['stop', 'length'].includes(c.finish_reason));
  });
  // Two different samples somewhere (they are draws, not copies).
  assert.ok(prompts.some((p) => samples[p][0] !== samples[p][1]));
});

test('streamed n = 2: chunks carry their choice index, each choice adds up and ends', async () => {
  const prompts = Object.keys(samples).slice(0, 2);
  const stream = await client.completions.create({
    model, prompt: prompts, n: 2, seed: 7, temperature: 1.5, max_tokens: 12, stream: true,
  });
  const text = {};
  const ends = {};
  for await (const chunk of stream) {
    assert.equal(chunk.choices.length, 1);
    const c = chunk.choices[0];
    text[c.index] = (text[c.index] ?? '') + c.text;
    if (c.finish_reason) ends[c.index] = (ends[c.index] ?? 0) + 1;
  }
  for (let i = 0; i < 4; ++i) {
    assert.equal(text[i], samples[prompts[Math.floor(i / 2)]][i % 2], `choice ${i}`);
    assert.equal(ends[i], 1, `choice ${i} ends once`);
  }
});

test('chat completions through the model\'s chat template', async () => {
  for (const [prompt, text] of Object.entries(expected)) {
    const r = await client.chat.completions.create({
      model, messages: [{ role: 'user', content: prompt }], max_tokens: 16, temperature: 0,
      // What common tools send: OpenAI's defaults, accepted.
      n: 1, presence_penalty: 0, frequency_penalty: 0, top_p: 1, logprobs: false, user: 'oracle-test',
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, text, `prompt ${JSON.stringify(prompt)}`);
  }
});

test('streamed chat: role first, content adds up, usage last', async () => {
  const [prompt, text] = Object.entries(expected)[1];
  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: prompt }], max_completion_tokens: 16, temperature: 0,
    stream: true, stream_options: { include_usage: true },
  });
  let got = '';
  let first = true;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (first) assert.equal(c.delta.role, 'assistant');
      first = false;
      got += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(got, text);
  assert.ok(finish);
  assert.ok(usage && usage.completion_tokens > 0);
});

test('the client\'s exceptions carry our status, message and field', async () => {
  let e = await refusal(client.completions.create({ model, prompt: 'x', max_tokens: 4, n: 2, best_of: 3 }));
  assert.equal(e.status, 400);
  assert.equal(e.param, 'best_of');
  assert.match(e.message, /'best_of' is not supported by mii-serve yet \(got 3\)/);
  e = await refusal(client.completions.create({ model, prompt: 'x', max_tokens: 5000 }));
  assert.equal(e.status, 400);
  assert.equal(e.param, 'max_tokens');
  assert.match(e.message, /context is 2048 tokens/);
  e = await refusal(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], temperature: -1 }));
  assert.equal(e.status, 400);
  assert.equal(e.param, 'temperature');
  e = await refusal(client.completions.create({ model, prompt: 'x', max_tokens: 4, frobnicate: true }));
  assert.equal(e.status, 400);
  assert.match(e.message, /unknown field 'frobnicate'/);
  e = await refusal(client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }],
  }));
  assert.equal(e.status, 400);
  assert.match(e.message, /the last message must not be the assistant's/);
  e = await refusal(client.completions.create({ model: 'gpt-4o', prompt: 'x' }));
  assert.ok(e instanceof OpenAI.NotFoundError);
  assert.equal(e.status, 404);
  assert.equal(e.code, 'model_not_found');
  const stranger = new OpenAI({ baseURL: baseURL + '/v1', apiKey: 'wrong', maxRetries: 0 });
  e = await refusal(stranger.models.list());
  assert.ok(e instanceof OpenAI.AuthenticationError);
  assert.equal(e.status, 401);
});

(async () => {
  let failed = 0;
  for (const [name, fn] of tests) {
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}\n${e.stack || e}`);
    }
  }
  console.log(`${tests.length - failed}/${tests.length} passed`);
  process.exit(failed ? 1 : 0);
})();
