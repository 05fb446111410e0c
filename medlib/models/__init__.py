"""Models, one module per chapter family: cnn, rnn, autoencoder, gan, unet, vit, hybrid."""
