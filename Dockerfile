# The GPU image: jax[cuda12] (CUDA libraries come as pip wheels; the host needs
# an NVIDIA driver and the NVIDIA container toolkit: `docker run --gpus all`).
#
#   docker build -t yoshimidi .
#   docker run --gpus all -v $PWD/data:/app/data \
#     -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_DEFAULT_REGION [-e AWS_ENDPOINT_URL] \
#     yoshimidi python -m experiments.train --config=configs/base.py \
#       --workdir=s3://BUCKET/runs/base --config.data.path=data/lakh
#
# The default command trains the base config on data/m21 into /app/runs/base
# (prepare the data first, or mount a prepared folder on /app/data).
# Play a run from the browser (the instrument; bind all interfaces inside the
# container, publish the port on the host's loopback only):
#   docker run --gpus all -p 127.0.0.1:8000:8000 yoshimidi \
#     python -m experiments.serve --workdir=s3://BUCKET/runs/base --host=0.0.0.0 --port=8000
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends fluidsynth && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir "jax[cuda12]==0.10.2"
COPY . .
EXPOSE 8000
CMD ["python", "-m", "experiments.train", "--config=configs/base.py", "--workdir=runs/base"]
