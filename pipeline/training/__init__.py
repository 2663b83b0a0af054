"""Pure PyTorch: datasets as tensors (built-in sets, image folders, your data.factory), batch
augmentation and normalisation, model builders (built-ins, torchvision by name, your
model.factory), the training loop, the LR range test.

Imports torch, torchvision and `pipeline.config` only: no Ray, no MLflow (a test checks it), so
the LR range test and every trial train through exactly this code, inside Ray or not.
"""
