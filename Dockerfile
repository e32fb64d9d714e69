# The GPU image: jax[cuda12] (CUDA libraries come as pip wheels; the host needs
# an NVIDIA driver and the NVIDIA container toolkit: `docker run --gpus all`).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir "jax[cuda12]==0.10.2"
COPY . .
# Until the training entry point lands, the image prepares the embedded corpus.
CMD ["python", "-m", "experiments.prepare", "--source=music21", "--out=data/m21"]
