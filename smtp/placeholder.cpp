// placeholder: replaced by the smtp implementation
