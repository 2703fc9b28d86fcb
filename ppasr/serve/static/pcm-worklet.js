// Microphone audio → 16 kHz 16-bit PCM chunks for the recognition WebSocket (runs on the audio thread).
// When the AudioContext is not at 16 kHz, each output sample is the mean of the input samples it
// covers (a box low-pass, enough against aliasing for speech recognition).
class PcmEncoder extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, chunkSamples } = options.processorOptions;
    this.step = sampleRate / targetRate; // input samples per output sample
    this.chunk = new Int16Array(chunkSamples);
    this.filled = 0;
    this.sum = 0;
    this.count = 0;
    this.position = 0;
    this.port.onmessage = (event) => {
      if (event.data === 'flush') {
        this.send();
        this.port.postMessage('flushed');
      }
    };
  }

  send() {
    if (this.filled > 0) {
      const pcm = this.chunk.slice(0, this.filled);
      this.port.postMessage(pcm.buffer, [pcm.buffer]);
      this.filled = 0;
    }
  }

  push(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = clipped < 0 ? clipped * 32768 : clipped * 32767;
    if (this.filled === this.chunk.length) this.send();
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let sample = 0;
      for (const channel of channels) sample += channel[i];
      this.sum += sample / channels.length;
      this.count += 1;
      this.position += 1;
      if (this.position >= this.step) {
        const value = this.sum / this.count;
        while (this.position >= this.step) {
          this.push(value);
          this.position -= this.step;
        }
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }
}

registerProcessor('pcm-encoder', PcmEncoder);
