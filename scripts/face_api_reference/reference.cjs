// node reference.cjs CROPS.f32 N OUT.json
// CROPS.f32: N x 112 x 112 x 3 float32 little-endian RGB (0..255). Writes face-api's own
// outputs for each crop: expression probabilities (face-api order), age, P(male).
const fs = require('fs');
const path = require('path');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const tf = faceapi.tf;
const LABELS = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];

function load(net, model) {
  const dir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, `${model}-weights_manifest.json`)));
  const specs = manifest.flatMap((g) => g.weights);
  const bufs = manifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  const all = Buffer.concat(bufs);
  const weights = tf.io.decodeWeights(all.buffer.slice(all.byteOffset, all.byteOffset + all.length), specs);
  net.loadFromWeightMap(weights);
}

(async () => {
  const [file, n, out] = process.argv.slice(2);
  await tf.setBackend('cpu');
  await tf.ready();
  load(faceapi.nets.faceExpressionNet, 'face_expression_model');
  load(faceapi.nets.ageGenderNet, 'age_gender_model');
  const raw = fs.readFileSync(file);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  const size = 112 * 112 * 3;
  const results = [];
  for (let i = 0; i < Number(n); i++) {
    const x = tf.tensor4d(data.slice(i * size, (i + 1) * size), [1, 112, 112, 3]);
    const expr = await faceapi.nets.faceExpressionNet.predictExpressions(x);
    const ag = await faceapi.nets.ageGenderNet.predictAgeAndGender(x);
    results.push({
      expressions: LABELS.map((k) => expr[k]),
      age: ag.age,
      p_male: ag.gender === 'male' ? ag.genderProbability : 1 - ag.genderProbability,
    });
    x.dispose();
  }
  fs.writeFileSync(out, JSON.stringify({
    face_api: faceapi.version, tfjs: tf.version.tfjs, backend: tf.getBackend(),
    labels: LABELS, results,
  }));
})();
